/*
 * ctx_x86_64.S - the fiber context switch for x86-64 (System V ABI).
 *
 * void *heist__ctx_switch(void **save_sp, void *new_sp)
 *   Saves the callee-saved registers (rbx, rbp, r12-r15), the MXCSR and the
 *   x87 control word on the current stack, stores the stack pointer in
 *   *save_sp, loads new_sp and restores the same set from there. Everything
 *   else is caller-saved, so the C caller has already spilled it.
 *
 * heist__ctx_start
 *   The first "return address" of a fresh fiber (see heist__fiber_new in
 *   fiber.c): calls r12(r13) with rsp 16-byte aligned at the call, as the
 *   ABI wants ((rsp + 8) % 16 == 0 at the callee's entry). The entry
 *   function never returns; ud2 traps if it does.
 */
#if defined(__x86_64__)
	.text
	.globl	heist__ctx_switch
	.hidden	heist__ctx_switch
	.type	heist__ctx_switch, @function
	.p2align 4
heist__ctx_switch:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	addq	$8, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.cfi_endproc
	.size	heist__ctx_switch, .-heist__ctx_switch

	.globl	heist__ctx_start
	.hidden	heist__ctx_start
	.type	heist__ctx_start, @function
	.p2align 4
heist__ctx_start:
	movq	%r13, %rdi
	callq	*%r12
	ud2
	.size	heist__ctx_start, .-heist__ctx_start
#endif
	.section .note.GNU-stack,"",%progbits
