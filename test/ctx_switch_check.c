/*
 * ctx_switch_check.c - checks the hand-written fiber switch (lib/ctx_*.S)
 * on its own, without the scheduler: no heist library, no liburcu, no
 * Criterion; the exit status is the verdict.
 *
 * It builds fresh fiber stacks exactly as heist__fiber_new (lib/fiber.c)
 * does, links one of lib/ctx_x86_64.S or lib/ctx_aarch64.S, and checks:
 *   entry:     a fresh fiber's entry function gets its argument, runs with
 *              a 16-byte aligned stack, and starts with the default FP
 *              control (not the creator's);
 *   pingpong:  many rounds main -> A -> B -> main, values passed through
 *              memory, each fiber's locals kept across its switches;
 *   regs:      every callee-saved register (x86-64: rbx rbp r12-r15;
 *              aarch64: x19-x29, d8-d15) holds a known pattern across a
 *              switch to a fiber that loads other patterns into them
 *              (regs_check, in assembly below, so no compiler choice can
 *              hide a register the switch forgets);
 *   kernel:    the same from C: three contexts run an -O2 loop with many
 *              live integers and doubles and switch in every iteration;
 *              each must compute what the loop computes without switches;
 *   fpctl:     the FP control (x86-64: MXCSR and the x87 control word;
 *              aarch64: FPCR) is per fiber: each context sets its own
 *              rounding mode and must keep it while the others change
 *              theirs.
 *
 * Native: registered with ctest (test/CMakeLists.txt). AArch64 on an x86-64
 * machine: tools/check-aarch64 (cross gcc, qemu-aarch64).
 */
#define _GNU_SOURCE
#include <fenv.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void *heist__ctx_switch(void **save_sp, void *new_sp);
void heist__ctx_start(void);

#if defined(__x86_64__)
#define ARCH "x86-64"
#elif defined(__aarch64__)
#define ARCH "aarch64"
#else
#error "ctx_switch_check: x86-64 or aarch64 only (as lib/ctx_*.S)"
#endif

static int failures;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
        }                                                                      \
    } while (0)

/* ---- fresh fibers, as lib/fiber.c builds them ------------------------- */

/* Big enough for stdio and for a sanitizer's larger frames. */
enum { STACK_SIZE = 1 << 20 };

/* A fresh fiber's saved sp. This mirrors heist__fiber_new in lib/fiber.c
 * (the frame heist__ctx_switch pops for the first time); a change to one
 * must be made in the other, which is the point: this test checks that
 * layout against the assembly. */
static void *fiber_new(void (*fn)(void *), void *arg)
{
    char *map = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    /* fiber.c rounds the address of its struct heist__fiber down; start
     * from an odd address here so that the rounding is exercised. */
    uintptr_t top = (uintptr_t)(map + STACK_SIZE - 40 - 1) & ~(uintptr_t)15;
#if defined(__x86_64__)
    uint64_t *sp = (uint64_t *)(top - 64);
    uint32_t csr = 0x1F80;
    uint16_t cw = 0x037F;
    memcpy(&sp[0], &csr, 4);
    memcpy((char *)&sp[0] + 4, &cw, 2);
    sp[1] = 0;                        /* r15 */
    sp[2] = 0;                        /* r14 */
    sp[3] = (uint64_t)(uintptr_t)arg; /* r13: the argument */
    sp[4] = (uint64_t)(uintptr_t)fn;  /* r12: the function */
    sp[5] = 0;                        /* rbx */
    sp[6] = 0;                        /* rbp */
    sp[7] = (uint64_t)(uintptr_t)heist__ctx_start;
#elif defined(__aarch64__)
    uint64_t *sp = (uint64_t *)(top - 176);
    memset(sp, 0, 176);
    sp[0] = (uint64_t)(uintptr_t)fn;                /* x19: the function */
    sp[1] = (uint64_t)(uintptr_t)arg;               /* x20: the argument */
    sp[10] = 0;                                     /* x29 */
    sp[11] = (uint64_t)(uintptr_t)heist__ctx_start; /* x30 */
    sp[20] = 0;                                     /* fpcr */
#endif
    return sp;
}

/* Saved stack pointers: the main context and up to two fibers. */
enum { MAIN = 0, FA = 1, FB = 2 };
static void *sps[3];

static void switch_to(int self, int to)
{
    heist__ctx_switch(&sps[self], sps[to]);
}

/* Hides a value from the optimizer, so that an alignment it could prove
 * from the ABI is really computed from the stack pointer. */
static uintptr_t opaque(uintptr_t v)
{
    __asm__ volatile("" : "+r"(v));
    return v;
}

/* The rounding mode as the hardware holds it, read directly. On x86-64
 * the x87 control word must agree with MXCSR (fesetround sets both, and
 * the switch saves both). */
static int hw_round(void)
{
#if defined(__x86_64__)
    uint32_t csr;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(csr));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    int sse = (int)(csr >> 13) & 3, x87 = (cw >> 10) & 3;
    if (sse != x87)
        return -1;
    return sse; /* 0 nearest, 1 down, 2 up, 3 toward zero */
#elif defined(__aarch64__)
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    static const int map[4] = {0, 2, 1, 3}; /* RN RP RM RZ -> as x86 */
    return map[(fpcr >> 22) & 3];
#endif
}

static int hw_of(int fe_mode)
{
    switch (fe_mode) {
    case FE_TONEAREST:
        return 0;
    case FE_DOWNWARD:
        return 1;
    case FE_UPWARD:
        return 2;
    default:
        return 3;
    }
}

/* ---- entry: argument, alignment, initial FP control ------------------- */

static struct {
    void *arg;
    uintptr_t frame, local, deep;
    int fe_round, hw;
} seen;

__attribute__((noinline)) static uintptr_t deep_local(void)
{
    _Alignas(16) volatile char buf[32];
    buf[0] = 1;
    return opaque((uintptr_t)buf);
}

static void entry_fn(void *arg)
{
    _Alignas(16) volatile char buf[16];
    buf[0] = 0;
    seen.arg = arg;
    /* The frame pointer is set from sp at entry (x86-64: entry rsp - 8,
     * which the ABI makes 16-aligned; aarch64: sp itself). */
    seen.frame = opaque((uintptr_t)__builtin_frame_address(0));
    seen.local = opaque((uintptr_t)buf);
    seen.deep = deep_local();
    seen.fe_round = fegetround();
    seen.hw = hw_round();
    switch_to(FA, MAIN);
    for (;;) /* never resumed */
        abort();
}

static void check_entry(void)
{
    static int token;
    sps[FA] = fiber_new(entry_fn, &token);
    /* The creator's mode must not leak into a fresh fiber: fiber.c gives
     * every fiber the default control. */
    fesetround(FE_DOWNWARD);
    switch_to(MAIN, FA);
    CHECK(fegetround() == FE_DOWNWARD, "main lost its rounding mode");
    CHECK(hw_round() == 1, "main's hardware rounding is %d", hw_round());
    fesetround(FE_TONEAREST);
    CHECK(seen.arg == &token, "entry got %p, not %p", seen.arg, (void *)&token);
    CHECK(seen.frame % 16 == 0, "frame address %#lx",
          (unsigned long)seen.frame);
    CHECK(seen.local % 16 == 0, "aligned local at %#lx",
          (unsigned long)seen.local);
    CHECK(seen.deep % 16 == 0, "aligned local one call deeper at %#lx",
          (unsigned long)seen.deep);
    CHECK(seen.fe_round == FE_TONEAREST, "fresh fiber's fegetround %#x",
          (unsigned)seen.fe_round);
    CHECK(seen.hw == 0, "fresh fiber's hardware rounding %d", seen.hw);
}

/* ---- pingpong: main -> A -> B -> main ---------------------------------- */

enum { PINGPONG_ROUNDS = 200000 };

static uint64_t mailbox;
static uint64_t counts[3];

static uint64_t step_a(uint64_t v)
{
    return v * 6364136223846793005u + 1442695040888963407u;
}

static uint64_t step_b(uint64_t v)
{
    return (v ^ (v >> 29)) + 0x9E3779B97F4A7C15u;
}

static void pingpong_a(void *arg)
{
    (void)arg;
    /* Locals on the fiber's own stack, which must survive its switches. */
    volatile uint64_t n = 0;
    for (;;) {
        mailbox = step_a(mailbox);
        n = n + 1;
        counts[FA] = n;
        switch_to(FA, FB);
    }
}

static void pingpong_b(void *arg)
{
    uint64_t salt = (uint64_t)(uintptr_t)arg;
    volatile uint64_t n = 0;
    for (;;) {
        mailbox = step_b(mailbox) ^ salt;
        n = n + 1;
        counts[FB] = n;
        switch_to(FB, MAIN);
    }
}

static void check_pingpong(void)
{
    const uint64_t salt = 0x5A17;
    sps[FA] = fiber_new(pingpong_a, NULL);
    sps[FB] = fiber_new(pingpong_b, (void *)(uintptr_t)salt);
    int bad = 0;
    for (uint64_t i = 0; i < PINGPONG_ROUNDS; i++) {
        uint64_t v = i * 0x100000001b3u;
        mailbox = v;
        switch_to(MAIN, FA);
        uint64_t want = step_b(step_a(v)) ^ salt;
        if (mailbox != want || counts[FA] != i + 1 || counts[FB] != i + 1) {
            if (bad++ < 5)
                CHECK(0,
                      "round %llu: mailbox %#llx want %#llx, counts %llu "
                      "%llu",
                      (unsigned long long)i, (unsigned long long)mailbox,
                      (unsigned long long)want, (unsigned long long)counts[FA],
                      (unsigned long long)counts[FB]);
        }
    }
}

/* ---- regs: callee-saved registers, from assembly ----------------------- */

/*
 * uint64_t regs_check(void **save_sp, void *new_sp, const uint64_t *pat)
 *   Loads pat[] into every callee-saved register, calls
 *   heist__ctx_switch(save_sp, new_sp), and when switched back compares
 *   them with pat[] again: bit i of the result is set when register i of
 *   the list below changed. It saves and restores those registers itself,
 *   as the ABI requires of any function.
 *   x86-64:  bit 0-4: rbx r12 r13 r14 r15 (pat[0..4]); bit 5: rbp (must
 *            still point at this frame).
 *   aarch64: bit 0-9: x19-x28 (pat[0..9]); bit 10-17: d8-d15 (pat[10..17]);
 *            bit 18: x29 (must still point at this frame).
 */
uint64_t regs_check(void **save_sp, void *new_sp, const uint64_t *pat);
#if defined(__x86_64__)
enum { NPAT = 5 };
__asm__(".text\n"
        ".p2align 4\n"
        ".globl regs_check\n"
        ".hidden regs_check\n"
        ".type regs_check, @function\n"
        "regs_check:\n"
        "  pushq %rbp\n"
        "  movq %rsp, %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  pushq %rdx\n" /* 7 pushes: rsp is 16-aligned for the call */
        "  movq 0(%rdx), %rbx\n"
        "  movq 8(%rdx), %r12\n"
        "  movq 16(%rdx), %r13\n"
        "  movq 24(%rdx), %r14\n"
        "  movq 32(%rdx), %r15\n"
        "  call heist__ctx_switch\n"
        "  movq (%rsp), %rdx\n"
        "  xorl %eax, %eax\n"
        "  cmpq 0(%rdx), %rbx\n"
        "  je 1f\n"
        "  orl $1, %eax\n"
        "1:cmpq 8(%rdx), %r12\n"
        "  je 1f\n"
        "  orl $2, %eax\n"
        "1:cmpq 16(%rdx), %r13\n"
        "  je 1f\n"
        "  orl $4, %eax\n"
        "1:cmpq 24(%rdx), %r14\n"
        "  je 1f\n"
        "  orl $8, %eax\n"
        "1:cmpq 32(%rdx), %r15\n"
        "  je 1f\n"
        "  orl $16, %eax\n"
        "1:leaq 48(%rsp), %rcx\n"
        "  cmpq %rcx, %rbp\n"
        "  je 1f\n"
        "  orl $32, %eax\n"
        "1:popq %rdx\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size regs_check, .-regs_check\n");
#elif defined(__aarch64__)
enum { NPAT = 18 };
__asm__(".text\n"
        ".p2align 4\n"
        ".globl regs_check\n"
        ".hidden regs_check\n"
        ".type regs_check, %function\n"
        "regs_check:\n"
        "  stp x29, x30, [sp, #-176]!\n"
        "  mov x29, sp\n"
        "  stp x19, x20, [sp, #16]\n"
        "  stp x21, x22, [sp, #32]\n"
        "  stp x23, x24, [sp, #48]\n"
        "  stp x25, x26, [sp, #64]\n"
        "  stp x27, x28, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  str x2, [sp, #160]\n"
        "  ldp x19, x20, [x2, #0]\n"
        "  ldp x21, x22, [x2, #16]\n"
        "  ldp x23, x24, [x2, #32]\n"
        "  ldp x25, x26, [x2, #48]\n"
        "  ldp x27, x28, [x2, #64]\n"
        "  ldp d8, d9, [x2, #80]\n"
        "  ldp d10, d11, [x2, #96]\n"
        "  ldp d12, d13, [x2, #112]\n"
        "  ldp d14, d15, [x2, #128]\n"
        "  bl heist__ctx_switch\n"
        "  ldr x2, [sp, #160]\n"
        "  mov x0, #0\n"
        /* rc_x/rc_d: set bit b of x0 when register r differs from pat at
         * offset o. */
        ".macro rc_x r, o, b\n"
        "  ldr x3, [x2, #\\o]\n"
        "  cmp \\r, x3\n"
        "  b.eq 1f\n"
        "  orr x0, x0, #(1 << \\b)\n"
        "1:\n"
        ".endm\n"
        ".macro rc_d r, o, b\n"
        "  fmov x4, \\r\n"
        "  rc_x x4, \\o, \\b\n"
        ".endm\n"
        "  rc_x x19, 0, 0\n"
        "  rc_x x20, 8, 1\n"
        "  rc_x x21, 16, 2\n"
        "  rc_x x22, 24, 3\n"
        "  rc_x x23, 32, 4\n"
        "  rc_x x24, 40, 5\n"
        "  rc_x x25, 48, 6\n"
        "  rc_x x26, 56, 7\n"
        "  rc_x x27, 64, 8\n"
        "  rc_x x28, 72, 9\n"
        "  rc_d d8, 80, 10\n"
        "  rc_d d9, 88, 11\n"
        "  rc_d d10, 96, 12\n"
        "  rc_d d11, 104, 13\n"
        "  rc_d d12, 112, 14\n"
        "  rc_d d13, 120, 15\n"
        "  rc_d d14, 128, 16\n"
        "  rc_d d15, 136, 17\n"
        ".purgem rc_d\n"
        ".purgem rc_x\n"
        "  mov x3, sp\n"
        "  cmp x29, x3\n"
        "  b.eq 1f\n"
        "  orr x0, x0, #(1 << 18)\n"
        "1:\n"
        "  ldp x19, x20, [sp, #16]\n"
        "  ldp x21, x22, [sp, #32]\n"
        "  ldp x23, x24, [sp, #48]\n"
        "  ldp x25, x26, [sp, #64]\n"
        "  ldp x27, x28, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  ldp x29, x30, [sp], #176\n"
        "  ret\n"
        ".size regs_check, .-regs_check\n");
#endif

enum { REGS_ROUNDS = 1000 };

static void fill_pattern(uint64_t *pat, uint64_t seed)
{
    for (int i = 0; i < NPAT; i++)
        pat[i] = step_a(seed + (uint64_t)i) | 1;
}

static uint64_t regs_fiber_bad;

static void regs_fiber(void *arg)
{
    (void)arg;
    uint64_t pat[NPAT];
    for (uint64_t r = 0;; r++) {
        fill_pattern(pat, 0xF1BE5 + r);
        regs_fiber_bad |= regs_check(&sps[FA], sps[MAIN], pat);
    }
}

static void check_regs(void)
{
    sps[FA] = fiber_new(regs_fiber, NULL);
    uint64_t pat[NPAT], bad = 0;
    /* The first switch starts the fiber; from the second on, every switch
     * in either direction goes from one regs_check to another. */
    switch_to(MAIN, FA);
    for (uint64_t r = 0; r < REGS_ROUNDS; r++) {
        fill_pattern(pat, 0x3A17 + r);
        bad |= regs_check(&sps[MAIN], sps[FA], pat);
    }
    CHECK(bad == 0, "main's callee-saved registers changed: mask %#llx",
          (unsigned long long)bad);
    CHECK(regs_fiber_bad == 0,
          "the fiber's callee-saved registers changed: mask %#llx",
          (unsigned long long)regs_fiber_bad);
}

/* ---- kernel: the same, with registers the compiler allocates ----------- */

enum { KERNEL_ROUNDS = 20000 };

static bool kernel_switch;

/* Passes control to the next of the three contexts when switching. */
__attribute__((noinline)) static void yield(int self)
{
    if (kernel_switch)
        switch_to(self, (self + 1) % 3);
    else
        __asm__ volatile("" ::: "memory");
}

/* More live integers and doubles than there are callee-saved registers,
 * each updated every round and live across the call to yield(). Built at
 * -O2 (test/CMakeLists.txt), they sit in callee-saved registers there. */
__attribute__((noinline)) static uint64_t kernel(int self, uint64_t seed)
{
    uint64_t a = seed, b = seed * 3 + 1, c = seed ^ 0x55, d = seed + 7;
    uint64_t e = seed * 11, f = ~seed, g = seed << 3, h = seed >> 1;
    uint64_t i = seed + 99, j = seed * 13 + 5, k = seed ^ 0xABCDEF;
    double d0 = (double)(seed & 0xFF) * 0.5, d1 = 1.25, d2 = -3.5, d3 = 0.125,
           d4 = 7.0, d5 = (double)(seed & 7), d6 = 2.5, d7 = -0.75, d8 = 0.3;
    for (int n = 0; n < KERNEL_ROUNDS; n++) {
        a += b ^ (uint64_t)n;
        b = b * 7 + c;
        c ^= d << 1;
        d += e >> 3;
        e = e * 5 + f;
        f ^= g + (uint64_t)n;
        g += h * 3;
        h = (h ^ i) + 1;
        i += j >> 2;
        j ^= k * 9;
        k += a;
        d0 = d0 * 0.5 + d1;
        d1 = d1 * 0.25 + d2 + 1.0;
        d2 = d2 * 0.5 - d3;
        d3 = d3 * 0.75 + d4 * 0.125;
        d4 = d4 * 0.5 + d5 * 0.25;
        d5 = d5 * 0.5 + d6;
        d6 = d6 * 0.25 + d7 - 0.5;
        d7 = d7 * 0.5 + d8;
        d8 = d8 * 0.5 + d0 * 0.125;
        yield(self);
    }
    double s = d0 + 2 * d1 + 3 * d2 + 5 * d3 + 7 * d4 + 11 * d5 + 13 * d6 +
               17 * d7 + 19 * d8;
    uint64_t sb;
    memcpy(&sb, &s, sizeof sb);
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^ k ^ sb;
}

static const uint64_t kernel_seed[3] = {0x1234, 0xBEEF, 0xC0FFEE};
static uint64_t kernel_result[3];

static void kernel_fiber(void *arg)
{
    int self = (int)(uintptr_t)arg;
    kernel_result[self] = kernel(self, kernel_seed[self]);
    /* Hand on the final round; never resumed after that. */
    switch_to(self, (self + 1) % 3);
    for (;;)
        abort();
}

static void check_kernel(void)
{
    uint64_t want[3];
    kernel_switch = false;
    for (int s = 0; s < 3; s++)
        want[s] = kernel(s, kernel_seed[s]);

    kernel_switch = true;
    sps[FA] = fiber_new(kernel_fiber, (void *)(uintptr_t)FA);
    sps[FB] = fiber_new(kernel_fiber, (void *)(uintptr_t)FB);
    kernel_result[MAIN] = kernel(MAIN, kernel_seed[MAIN]);
    /* A and B are still in their last yield: one more round ends them. */
    switch_to(MAIN, FA);
    kernel_switch = false;
    for (int s = 0; s < 3; s++)
        CHECK(kernel_result[s] == want[s],
              "context %d computed %#llx with switches, %#llx without", s,
              (unsigned long long)kernel_result[s],
              (unsigned long long)want[s]);
}

/* ---- fpctl: per-fiber FP control --------------------------------------- */

enum { FPCTL_ROUNDS = 100 };

static volatile double fp_one = 1.0, fp_three = 3.0;
static int fpctl_bad[3];

/* 1/3 is inexact, so its last bit tells the mode apart: up and down
 * differ, and toward zero equals down for a positive quotient. The
 * quotient goes through a volatile so that the division stays between
 * the fesetround calls around it (without -frounding-math the compiler
 * may move it across them). */
__attribute__((noinline)) static double third(void)
{
    volatile double r = fp_one / fp_three;
    return r;
}

static double third_in(int mode)
{
    int old = fegetround();
    fesetround(mode);
    double r = third();
    fesetround(old);
    return r;
}

/* Run in each context every round: the mode it set must still be there. */
static void fpctl_check(int self, int mode, double want)
{
    if (fegetround() != mode || hw_round() != hw_of(mode) || third() != want) {
        if (fpctl_bad[self]++ < 3)
            fprintf(stderr,
                    "context %d: fegetround %#x, hardware %d, want "
                    "%#x\n",
                    self, (unsigned)fegetround(), hw_round(), (unsigned)mode);
    }
}

static double fpctl_want[3];
static const int fpctl_mode[3] = {FE_TONEAREST, FE_UPWARD, FE_TOWARDZERO};

static void fpctl_fiber(void *arg)
{
    int self = (int)(uintptr_t)arg;
    fesetround(fpctl_mode[self]);
    for (;;) {
        fpctl_check(self, fpctl_mode[self], fpctl_want[self]);
        switch_to(self, (self + 1) % 3);
    }
}

static void check_fpctl(void)
{
    for (int s = 0; s < 3; s++)
        fpctl_want[s] = third_in(fpctl_mode[s]);
    CHECK(fpctl_want[1] != fpctl_want[2], "1/3 rounds the same up and down");
    sps[FA] = fiber_new(fpctl_fiber, (void *)(uintptr_t)FA);
    sps[FB] = fiber_new(fpctl_fiber, (void *)(uintptr_t)FB);
    fesetround(fpctl_mode[MAIN]);
    for (int r = 0; r < FPCTL_ROUNDS; r++) {
        switch_to(MAIN, FA);
        fpctl_check(MAIN, fpctl_mode[MAIN], fpctl_want[MAIN]);
    }
    for (int s = 0; s < 3; s++)
        CHECK(fpctl_bad[s] == 0, "context %d lost its rounding mode %d times",
              s, fpctl_bad[s]);
    fesetround(FE_TONEAREST);
}

int main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } checks[] = {
        {"entry", check_entry}, {"pingpong", check_pingpong},
        {"regs", check_regs},   {"kernel", check_kernel},
        {"fpctl", check_fpctl},
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        int before = failures;
        checks[i].fn();
        printf("%s: %s\n", checks[i].name, failures == before ? "ok" : "FAIL");
        fflush(stdout);
    }
    printf("ctx_switch_check (%s): %s\n", ARCH, failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
