/*
 * ctx_aarch64.S - the fiber context switch for AArch64 (AAPCS64).
 *
 * void *heist__ctx_switch(void **save_sp, void *new_sp)
 *   Saves the callee-saved registers x19-x28, the frame pointer x29, the
 *   link register x30, d8-d15 (the low halves of v8-v15 are callee-saved)
 *   and FPCR on the current stack (176 bytes, a multiple of 16 so sp stays
 *   aligned), stores sp in *save_sp, loads new_sp, restores the same set
 *   and returns through the restored x30. Everything else is caller-saved
 *   (x0-x17, the rest of v0-v31; x18, the platform register, is left
 *   alone), so the C caller has already spilled it. FPSR (the sticky
 *   exception flags) is not switched. The return value is unspecified;
 *   callers ignore it.
 *
 * heist__ctx_start
 *   The first x30 of a fresh fiber (the frame heist__fiber_new in fiber.c
 *   builds): calls x19(x20) with sp == the 16-aligned top of the stack,
 *   x29 == 0 to end backtraces. The entry function never returns; brk
 *   traps if it does.
 *
 * test/ctx_switch_check.c checks both against fiber.c's frame; on an
 * x86-64 machine tools/check-aarch64 runs it under qemu-aarch64.
 */
#if defined(__aarch64__)
	.text
	.globl	heist__ctx_switch
	.hidden	heist__ctx_switch
	.type	heist__ctx_switch, %function
	.p2align 4
heist__ctx_switch:
	sub	sp, sp, #176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x9, fpcr
	str	x9, [sp, #160]
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	ldr	x9, [sp, #160]
	msr	fpcr, x9
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	ret
	.size	heist__ctx_switch, .-heist__ctx_switch

	.globl	heist__ctx_start
	.hidden	heist__ctx_start
	.type	heist__ctx_start, %function
	.p2align 4
heist__ctx_start:
	mov	x0, x20
	blr	x19
	brk	#0
	.size	heist__ctx_start, .-heist__ctx_start
#endif
	.section .note.GNU-stack,"",%progbits
