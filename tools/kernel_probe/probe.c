/* probe.c - ground-truth probe of Linux VM syscalls (mmap/munmap/mprotect/mremap/madvise/mlock/mseal/brk/fork/pagemap).
 * Build: gcc -O0 -o probe probe.c     Run: ./probe [section]  (sections: mmap munmap mprotect mremap madvise mlock mseal brk fork pagemap misc)
 * Run as root for pagemap PFNs, /proc/kpagecount and the root mmap_min_addr cases (uid-65534 cases fork + setuid themselves).
 * Test mappings use MAP_FIXED in private windows at 0x100000000000 + k*256MB; layouts are printed from /proc/self/smaps as
 * page offsets relative to the window base, with Rss and VmFlags. Output feeds docs/kernel-facts.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PG 4096L
#define RW (PROT_READ | PROT_WRITE)
#define PA (MAP_PRIVATE | MAP_ANONYMOUS)
#define SA (MAP_SHARED | MAP_ANONYMOUS)
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif

static char *B; /* current window base */
static int win_no;
#define P(n) (B + (long)(n) * PG)

static char *window(void) {
	B = (char *)(0x100000000000UL + (unsigned long)(++win_no) * 0x10000000UL);
	return B;
}

static void res(const char *desc, const char *code, long r, int e) {
	char v[128];
	if (r == -1 && e)
		snprintf(v, sizeof v, "-1 %s", strerrorname_np(e));
	else if (B && r >= (long)B - (1L << 36) && r <= (long)B + (1L << 36) && r != 0)
		snprintf(v, sizeof v, "%#lx (base%+ldp%s)", r, (r - (long)B) / PG, ((r - (long)B) % PG) ? "+unaligned" : "");
	else
		snprintf(v, sizeof v, "%ld (%#lx)", r, r);
	printf("  %-44s | %-70s => %s\n", desc, code, v);
	fflush(stdout);
}
#define T(desc, expr)                        \
	do {                                     \
		errno = 0;                           \
		long _r = (long)(expr);              \
		int _e = errno;                      \
		res(desc, #expr, _r, _e);            \
	} while (0)

static long Mremap(void *o, long ol, long nl, long fl, void *na) { return syscall(SYS_mremap, o, ol, nl, fl, na); }
static long Mseal(void *a, long l, long f) { return syscall(SYS_mseal, a, l, f); }
static long Mlock2(void *a, long l, long f) { return syscall(SYS_mlock2, a, l, f); }
static void *Map(long pg, long npages, int prot, int flags) {
	void *r = mmap(P(pg), npages * PG, prot, flags | MAP_FIXED, -1, 0);
	if (r == MAP_FAILED) { perror("setup mmap"); exit(1); }
	return r;
}
static void touch(long pg, long npages) { for (long i = 0; i < npages; i++) *(volatile char *)P(pg + i) = 'x'; }

/* read one byte via /proc/self/mem: -1 if not mapped/readable */
static int peek(void *a) {
	unsigned char c; int fd = open("/proc/self/mem", O_RDONLY);
	ssize_t n = pread(fd, &c, 1, (off_t)(unsigned long)a); close(fd);
	return n == 1 ? c : -1;
}

static char sbuf[1 << 22];
/* show vmas overlapping [P(from), P(to)) */
static void show(const char *label, long from, long to) {
	unsigned long lo = (unsigned long)P(from), hi = (unsigned long)P(to);
	int fd = open("/proc/self/smaps", O_RDONLY);
	size_t n = 0; ssize_t k;
	while ((k = read(fd, sbuf + n, sizeof(sbuf) - 1 - n)) > 0) n += k;
	sbuf[n] = 0; close(fd);
	printf("    maps[%s] window pages [%ld,%ld):\n", label, from, to);
	char *line = sbuf; int cur = 0, any = 0;
	while (*line) {
		char *nl = strchr(line, '\n'); if (nl) *nl = 0;
		unsigned long s, e; int off = 0;
		if (sscanf(line, "%lx-%lx %n", &s, &e, &off) == 2 && off) {
			cur = (e > lo && s < hi);
			if (cur) { any = 1; printf("      [%+ld,%+ld)p %s\n", ((long)s - (long)B) / PG, ((long)e - (long)B) / PG, line + off); }
		} else if (cur && (!strncmp(line, "VmFlags:", 8) || !strncmp(line, "Rss:", 4)))
			printf("          %s\n", line);
		if (!nl) break;
		line = nl + 1;
	}
	if (!any) printf("      (no vmas)\n");
	fflush(stdout);
}
static void sec(const char *s) { printf("\n===== %s =====\n", s); fflush(stdout); }

static uint64_t pagemap(void *a) {
	uint64_t v = 0; int fd = open("/proc/self/pagemap", O_RDONLY);
	pread(fd, &v, 8, ((unsigned long)a / PG) * 8); close(fd); return v;
}
static uint64_t kpagecount(uint64_t pfn) {
	uint64_t v = (uint64_t)-1; int fd = open("/proc/kpagecount", O_RDONLY);
	if (fd < 0) return v;
	if (pread(fd, &v, 8, pfn * 8) != 8) v = (uint64_t)-1;
	close(fd); return v;
}
static void pm(const char *label, void *a) {
	uint64_t v = pagemap(a); uint64_t pfn = v & ((1ULL << 55) - 1);
	printf("  pagemap %-34s raw=%016llx present=%d swap=%d file/shared-anon(61)=%d guard(58)=%d uffd-wp(57)=%d excl(56)=%d softdirty(55)=%d pfn=%#llx",
	       label, (unsigned long long)v, (int)(v >> 63 & 1), (int)(v >> 62 & 1), (int)(v >> 61 & 1), (int)(v >> 58 & 1), (int)(v >> 57 & 1),
	       (int)(v >> 56 & 1), (int)(v >> 55 & 1), (unsigned long long)pfn);
	if (v >> 63 & 1) printf(" kpagecount=%lld", (long long)kpagecount(pfn));
	printf("\n"); fflush(stdout);
}

static void t_mmap(void) {
	sec("1. mmap");
	window();
	T("len 0", mmap(NULL, 0, RW, PA, -1, 0));
	T("unaligned addr + MAP_FIXED", mmap(P(0) + 1, PG, RW, PA | MAP_FIXED, -1, 0));
	T("unaligned hint (no FIXED), free", mmap(P(0) + 1, PG, RW, PA, -1, 0));
	show("after unaligned hint", 0, 3);
	munmap(P(0), 3 * PG);
	T("MAP_FIXED addr 0x1000 (root,CAP_SYS_RAWIO)", mmap((void *)0x1000, PG, RW, PA | MAP_FIXED, -1, 0));
	munmap((void *)0x1000, PG);
	T("MAP_FIXED addr 0 (root)", mmap((void *)0, PG, RW, PA | MAP_FIXED, -1, 0));
	munmap((void *)0, PG);
	T("hint 0x1000 no FIXED (root)", mmap((void *)0x1000, PG, RW, PA, -1, 0));
	munmap((void *)0x10000, PG);
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		if (setuid(65534)) perror("setuid");
		T("[uid 65534] hint 0x2000 (no FIXED), free", mmap((void *)0x2000, PG, RW, PA, -1, 0));
		T("[uid 65534] hint 0x20000 (no FIXED), free", mmap((void *)0x20000, PG, RW, PA, -1, 0));
		T("[uid 65534] MAP_FIXED addr 0x1000", mmap((void *)0x1000, PG, RW, PA | MAP_FIXED, -1, 0));
		T("[uid 65534] MAP_FIXED addr 0x0", mmap((void *)0, PG, RW, PA | MAP_FIXED, -1, 0));
		T("[uid 65534] MAP_FIXED addr 0x10000", mmap((void *)0x10000, PG, RW, PA | MAP_FIXED, -1, 0));
		T("[uid 65534] FIXED_NOREPLACE addr 0x1000", mmap((void *)0x1000, PG, RW, PA | MAP_FIXED_NOREPLACE, -1, 0));
		T("[uid 65534] hint 0x1000 (no FIXED)", mmap((void *)0x1000, PG, RW, PA, -1, 0));
		_exit(0);
	}
	waitpid(c, NULL, 0);

	Map(0, 2, RW, PA);
	T("FIXED_NOREPLACE fully over existing", mmap(P(1), PG, RW, PA | MAP_FIXED_NOREPLACE, -1, 0));
	T("FIXED_NOREPLACE partially over existing", mmap(P(1), 3 * PG, RW, PA | MAP_FIXED_NOREPLACE, -1, 0));
	T("FIXED_NOREPLACE free (next to existing)", mmap(P(2), PG, RW, PA | MAP_FIXED_NOREPLACE, -1, 0));
	T("FIXED_NOREPLACE unaligned", mmap(P(5) + 1, PG, RW, PA | MAP_FIXED_NOREPLACE, -1, 0));
	T("neither SHARED nor PRIVATE", mmap(NULL, PG, RW, MAP_ANONYMOUS, -1, 0));
	T("SHARED|PRIVATE (=SHARED_VALIDATE) anon", mmap(P(10), PG, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	T("SHARED_VALIDATE|0x40 (0x40=MAP_32BIT on x86)", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x40, -1, 0));
	T("SHARED_VALIDATE|0x400 (truly unknown bit)", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x400, -1, 0));
	T("SHARED_VALIDATE|0x200000 (unknown bit)", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x200000, -1, 0));
	T("MAP_SHARED|0x400 (unknown, not validated)", mmap(NULL, PG, RW, MAP_SHARED | MAP_ANONYMOUS | 0x400, -1, 0));
	T("MAP_PRIVATE|0x400 (unknown, ignored?)", mmap(NULL, PG, RW, PA | 0x400, -1, 0));
	T("SHARED_VALIDATE|MAP_SYNC(0x80000) anon", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 0x80000, -1, 0));
	int mfd = memfd_create("probe", 0); ftruncate(mfd, 16 * PG);
	T("memfd SHARED_VALIDATE (valid flags)", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE, mfd, 0));
	T("memfd SHARED_VALIDATE|0x400 (unknown)", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | 0x400, mfd, 0));
	T("memfd SHARED_VALIDATE|0x200000 (unknown)", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | 0x200000, mfd, 0));
	T("memfd SHARED_VALIDATE|0x40 (MAP_32BIT)", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | 0x40, mfd, 0));
	T("memfd SHARED_VALIDATE|MAP_SYNC", mmap(NULL, PG, RW, MAP_SHARED_VALIDATE | 0x80000, mfd, 0));
	T("memfd MAP_SHARED|0x400 (unknown)", mmap(NULL, PG, RW, MAP_SHARED | 0x400, mfd, 0));
	T("memfd MAP_SHARED|MAP_SYNC (not validated)", mmap(NULL, PG, RW, MAP_SHARED | 0x80000, mfd, 0));
	T("memfd unaligned offset", mmap(NULL, PG, RW, MAP_SHARED, mfd, 1));
	T("MAP_DROPPABLE(0x08)|ANON", mmap(P(160), 2 * PG, RW, 0x08 | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	show("MAP_DROPPABLE", 160, 162);
	T("MAP_PRIVATE|ANON|MAP_32BIT", mmap(NULL, PG, RW, PA | 0x40, -1, 0));
	T("prot 0x10 (unknown bit) mmap", mmap(NULL, PG, 0x10 | PROT_READ, PA, -1, 0));
	T("len = -4096 (huge)", mmap(NULL, (size_t)-PG, RW, PA, -1, 0));
	T("anon with offset 1 (unaligned off)", mmap(NULL, PG, RW, PA, -1, 1));
	T("anon with offset 4096 (aligned off)", mmap(NULL, PG, RW, PA, -1, PG));
	T("fd=-1 without MAP_ANONYMOUS", mmap(NULL, PG, RW, MAP_PRIVATE, -1, 0));

	T("hint free (P(20))", mmap(P(20), PG, RW, PA, -1, 0));
	void *nohint = mmap(NULL, PG, RW, PA, -1, 0);
	munmap(nohint, PG);
	printf("  (reference: a hint-less mmap(NULL,1p) returns %p; it was unmapped again)\n", nohint);
	T("hint occupied (P(0), mapped)", mmap(P(0), PG, RW, PA, -1, 0));
	T("hint partly occupied (P(19)..P(21))", mmap(P(19), 2 * PG, RW, PA, -1, 0));
	show("hint results", 0, 30);

	Map(40, 2, RW, PA); Map(42, 2, RW, PA);
	show("two adjacent private anon RW mmaps (unfaulted)", 38, 46);
	Map(50, 2, RW, PA); touch(50, 2); Map(52, 2, RW, PA); touch(52, 2);
	show("two adjacent private anon RW mmaps, both faulted right after each mmap", 48, 56);
	Map(60, 2, RW, PA); Map(62, 2, RW, PA | MAP_NORESERVE);
	show("normal [60,62) + MAP_NORESERVE [62,64)", 58, 66);
	Map(70, 2, PROT_READ, PA);
	show("PROT_READ private anon", 68, 74);
	Map(80, 2, PROT_NONE, PA);
	show("PROT_NONE private anon", 78, 84);
	Map(90, 2, RW, SA); Map(92, 2, RW, SA);
	show("two adjacent MAP_SHARED|MAP_ANONYMOUS", 88, 96);
	Map(100, 2, PROT_READ, SA);
	show("MAP_SHARED|ANON PROT_READ", 98, 104);
	Map(110, 2, RW, PA | MAP_GROWSDOWN);
	show("MAP_GROWSDOWN", 108, 114);
	Map(120, 2, RW, PA | MAP_STACK);
	show("MAP_STACK", 118, 124);
	Map(130, 2, RW, PA | MAP_LOCKED);
	show("MAP_LOCKED", 128, 134);
	Map(140, 2, PROT_READ | PROT_WRITE | PROT_EXEC, PA);
	show("RWX private anon", 138, 144);
	Map(150, 3, RW, PA);
	T("MAP_FIXED over middle of existing vma", mmap(P(151), PG, PROT_READ, PA | MAP_FIXED, -1, 0));
	show("after MAP_FIXED R page over middle of RW vma", 148, 155);
}

static void t_munmap(void) {
	sec("2. munmap");
	window();
	Map(0, 4, RW, PA);
	T("unaligned addr", munmap(P(0) + 1, PG));
	T("len 0", munmap(P(0), 0));
	T("unaligned len (1 byte) -> rounds up?", munmap(P(3), 1));
	show("after munmap(P(3),1)", 0, 5);
	T("unmapped range", munmap(P(100), PG));
	T("range partly unmapped", munmap(P(2), 5 * PG));
	show("after munmap(P(2),5p)", 0, 8);
	T("addr beyond TASK_SIZE", munmap((void *)0x800000000000UL, PG));
	T("len huge (wraps)", munmap(P(0), (size_t)-PG));
	Map(10, 5, RW, PA); touch(10, 5);
	T("punch hole in middle", munmap(P(12), PG));
	show("hole punched at page 12 of [10,15)", 8, 17);
}

static void t_mprotect(void) {
	sec("3. mprotect");
	window();
	Map(0, 4, RW, PA);
	T("unaligned start", mprotect(P(0) + 1, PG, PROT_READ));
	T("len 0", mprotect(P(0), 0, PROT_READ));
	T("prot 0x10 (invalid bit)", mprotect(P(0), PG, 0x10));
	T("prot 0x10|PROT_READ", mprotect(P(0), PG, 0x10 | PROT_READ));
	T("prot PROT_GROWSDOWN on non-growsdown", mprotect(P(0), PG, PROT_READ | PROT_GROWSDOWN));
	T("unaligned len 1 (rounded up)", mprotect(P(0), 1, PROT_READ));
	show("after mprotect(P(0),1,R)", 0, 5);
	T("unmapped range", mprotect(P(100), PG, PROT_READ));
	T("range starting in unmapped, ending mapped", mprotect(P(-1), 2 * PG, PROT_READ));
	show("after mprotect(P(-1),2p,R)", -1, 5);

	Map(10, 2, RW, PA); Map(13, 2, RW, PA);
	T("range with hole [10,15), hole at 12", mprotect(P(10), 5 * PG, PROT_READ));
	show("after mprotect over hole", 8, 17);
	Map(80, 2, RW, PA); Map(83, 2, RW, PA);
	T("range with hole, sub-range [81,84)", mprotect(P(81), 3 * PG, PROT_READ));
	show("after mprotect [81,84) over hole at 82", 79, 86);

	Map(20, 6, RW, PA); touch(20, 6);
	T("faulted: middle [22,24) -> R", mprotect(P(22), 2 * PG, PROT_READ));
	show("faulted after middle R", 20, 26);
	T("faulted: middle [22,24) -> RW again", mprotect(P(22), 2 * PG, RW));
	show("faulted after back to RW", 20, 26);

	Map(30, 6, RW, PA);
	T("unfaulted: middle [32,34) -> R", mprotect(P(32), 2 * PG, PROT_READ));
	show("unfaulted after middle R", 30, 36);
	T("unfaulted: middle [32,34) -> RW again", mprotect(P(32), 2 * PG, RW));
	show("unfaulted after back to RW", 30, 36);

	Map(40, 2, RW, PA);
	T("unfaulted RW->R", mprotect(P(40), 2 * PG, PROT_READ));
	show("unfaulted RW->R (ac dropped?)", 40, 42);
	Map(45, 2, RW, PA); touch(45, 2);
	T("faulted RW->R", mprotect(P(45), 2 * PG, PROT_READ));
	show("faulted RW->R (ac kept?)", 45, 47);
	Map(50, 2, PROT_READ, PA);
	T("R (no ac) -> RW", mprotect(P(50), 2 * PG, RW));
	show("R->RW (ac added?)", 50, 52);
	Map(55, 2, RW, PA | MAP_NORESERVE);
	T("NORESERVE RW->R->RW", mprotect(P(55), 2 * PG, PROT_READ) | mprotect(P(55), 2 * PG, RW));
	show("NORESERVE after R then RW", 55, 57);
	Map(60, 2, RW, SA);
	T("shared anon RW->R", mprotect(P(60), 2 * PG, PROT_READ));
	show("shared anon after R", 60, 62);
	Map(65, 2, PROT_READ, SA);
	T("shared anon (created R) -> RW", mprotect(P(65), 2 * PG, RW));
	show("shared anon created R, mprotect RW", 65, 67);
	Map(70, 2, RW, PA);
	Map(72, 2, PROT_READ, PA);
	T("R vma next to RW vma -> RW (merge?)", mprotect(P(72), 2 * PG, RW));
	show("after making [72,74) RW", 70, 74);
}

static void t_mremap(void) {
	sec("4. mremap");
	window();
	Map(0, 2, RW, PA);
	T("flags 0x8 (unknown)", Mremap(P(0), 2 * PG, 2 * PG, 0x8, 0));
	T("MREMAP_FIXED without MAYMOVE", Mremap(P(0), 2 * PG, 2 * PG, MREMAP_FIXED, P(10)));
	T("DONTUNMAP old_len != new_len", Mremap(P(0), 2 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0));
	T("DONTUNMAP without MAYMOVE", Mremap(P(0), 2 * PG, 2 * PG, MREMAP_DONTUNMAP, 0));
	T("unaligned old_addr", Mremap(P(0) + 1, PG, PG, 0, 0));
	T("new_len 0", Mremap(P(0), 2 * PG, 0, 0, 0));
	T("old_len 0 on private mapping", Mremap(P(0), 0, PG, MREMAP_MAYMOVE, 0));
	T("FIXED with unaligned new_addr", Mremap(P(0), PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(10) + 1));
	T("old_addr not mapped", Mremap(P(100), PG, 2 * PG, 0, 0));
	T("old_addr not mapped, MAYMOVE", Mremap(P(100), PG, 2 * PG, MREMAP_MAYMOVE, 0));
	T("old range extends past vma end, no move", Mremap(P(0), 3 * PG, 3 * PG, 0, 0));
	T("old range extends past vma end, grow", Mremap(P(0), 3 * PG, 4 * PG, 0, 0));
	T("same len, flags 0 (no-op)", Mremap(P(0), 2 * PG, 2 * PG, 0, 0));
	T("unaligned old_len 1 shrink->? (len rounded)", Mremap(P(0), PG + 1, 2 * PG, 0, 0));
	show("after those", 0, 4);
	munmap(P(0), 4 * PG);
	Map(0, 2, RW, PA);

	Map(2, 1, PROT_READ, PA);
	T("grow w/o MAYMOVE, next page mapped (diff prot)", Mremap(P(0), 2 * PG, 3 * PG, 0, 0));
	Map(5, 2, RW, PA); Map(7, 1, RW, PA);
	show("[5,8) RW single vma", 5, 8);
	T("grow sub-range [5,7) w/o MAYMOVE (not at vma end)", Mremap(P(5), 2 * PG, 3 * PG, 0, 0));

	Map(20, 2, RW, PA); Map(24, 2, RW, PA);
	T("grow in place to exactly fill gap (unfaulted)", Mremap(P(20), 2 * PG, 4 * PG, 0, 0));
	show("after filling gap [20,22)+[24,26)", 18, 28);
	Map(30, 2, RW, PA); touch(30, 2); Map(34, 2, RW, PA); touch(34, 2);
	T("grow in place fill gap (both faulted)", Mremap(P(30), 2 * PG, 4 * PG, 0, 0));
	show("after filling gap, both faulted", 28, 38);
	Map(40, 2, RW, PA); touch(40, 2); Map(44, 2, RW, PA);
	T("grow in place fill gap (old faulted, next not)", Mremap(P(40), 2 * PG, 4 * PG, 0, 0));
	show("after filling gap, old faulted next unfaulted", 38, 48);
	Map(50, 2, RW, PA); Map(54, 2, RW, PA); touch(54, 2);
	T("grow in place fill gap (old unfaulted, next faulted)", Mremap(P(50), 2 * PG, 4 * PG, 0, 0));
	show("after filling gap, old unfaulted next faulted", 48, 58);
	Map(60, 2, RW, PA); Map(64, 2, RW, PA);
	T("grow in place partially (gap 2p, grow 1p)", Mremap(P(60), 2 * PG, 3 * PG, 0, 0));
	show("after partial grow", 58, 68);
	Map(270, 2, RW, PA); Map(274, 2, RW, PA);
	T("grow by more than gap w/o MAYMOVE", Mremap(P(270), 2 * PG, 5 * PG, 0, 0));
	T("grow by more than gap with MAYMOVE", Mremap(P(270), 2 * PG, 5 * PG, MREMAP_MAYMOVE, 0));
	show("after MAYMOVE grow (old gone?)", 268, 278);
	T("unmapped old, same len, flags 0", Mremap(P(300), PG, PG, 0, 0));
	T("unmapped old, same len, MAYMOVE", Mremap(P(300), PG, PG, MREMAP_MAYMOVE, 0));
	T("unmapped old, same len, MAYMOVE|FIXED", Mremap(P(300), PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(310)));
	T("unmapped old, shrink", Mremap(P(300), 2 * PG, PG, 0, 0));
	Map(280, 2, RW, PA);
	T("unfaulted move next to compatible vma", Mremap(P(280), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, (Map(290, 2, RW, PA), P(292))));
	show("moved unfaulted next to unfaulted", 288, 296);

	Map(70, 4, RW, PA);
	T("FIXED new overlaps old (new=old+1p)", Mremap(P(70), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(71)));
	T("FIXED new == old", Mremap(P(70), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(70)));
	T("FIXED new range overlaps old end (new=old-1p)", Mremap(P(71), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(70)));
	Map(80, 4, RW, PA); touch(80, 4);
	T("shrink [80,84) to 2p", Mremap(P(80), 4 * PG, 2 * PG, 0, 0));
	show("after shrink", 78, 86);
	Map(86, 4, RW, PA);
	T("shrink with MAYMOVE|FIXED to new place", Mremap(P(86), 4 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(95)));
	show("after shrink+move", 85, 98);

	/* multi-vma moves */
	Map(100, 2, RW, PA); Map(102, 2, PROT_READ, PA);
	*(volatile char *)P(100) = 'a';
	T("MAYMOVE|FIXED spanning 2 adj vmas (RW,R), same len", Mremap(P(100), 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(110)));
	show("multi-vma move result [100..120)", 98, 120);
	printf("  peek P(110)=%d P(100)=%d (-1 = unmapped; 'a'=97)\n", peek(P(110)), peek(P(100)));
	Map(120, 2, RW, PA); Map(123, 2, PROT_READ, PA);
	T("MAYMOVE|FIXED spanning 2 vmas with hole", Mremap(P(120), 5 * PG, 5 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(130)));
	show("multi-vma w/ hole result [120..140)", 118, 140);
	Map(140, 2, RW, PA); Map(142, 2, PROT_READ, PA);
	T("MAYMOVE|FIXED spanning 2 vmas, grow 4p->6p", Mremap(P(140), 4 * PG, 6 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(150)));
	T("MAYMOVE|FIXED spanning 2 vmas, shrink 4p->3p", Mremap(P(140), 4 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(150)));
	T("MAYMOVE (no FIXED) spanning 2 vmas same len", Mremap(P(140), 4 * PG, 4 * PG, MREMAP_MAYMOVE, 0));
	T("no flags spanning 2 vmas same len", Mremap(P(140), 4 * PG, 4 * PG, 0, 0));
	T("MAYMOVE|FIXED|DONTUNMAP spanning 2 vmas", Mremap(P(140), 4 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, P(150)));
	show("[140..160) after failed multi-vma attempts", 138, 160);
	Map(160, 2, RW, PA); Map(163, 2, RW, PA);
	T("MAYMOVE|FIXED range starting in hole", Mremap(P(162), 3 * PG, 3 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(170)));
	show("[160..175) after range-starting-in-hole", 158, 175);

	Map(180, 2, RW, PA); memset(P(180), 'A', 2 * PG);
	T("DONTUNMAP|MAYMOVE|FIXED move of faulted region", Mremap(P(180), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, P(190)));
	show("after DONTUNMAP (old [180,182), new [190,192))", 178, 194);
	printf("  old P(180)[0]=%d  P(181)[0]=%d   new P(190)[0]=%d ('A'=65)\n", *(volatile char *)P(180), *(volatile char *)P(181), *(volatile char *)P(190));
	show("after reading old range", 178, 182);
	Map(195, 2, RW, PA); memset(P(195), 'B', 2 * PG);
	T("DONTUNMAP|MAYMOVE (no FIXED)", Mremap(P(195), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0));
	show("old range after DONTUNMAP no FIXED", 195, 197);
	Map(200, 2, RW, SA); memset(P(200), 'S', 2 * PG);
	T("DONTUNMAP on MAP_SHARED anon", Mremap(P(200), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, P(210)));
	show("shared DONTUNMAP", 198, 212);
	printf("  shared old P(200)[0]=%d\n", *(volatile char *)P(200));
	Map(215, 2, RW, SA);
	T("old_len 0 on MAP_SHARED (dup)", Mremap(P(215), 0, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(220)));
	show("shared dup", 213, 224);
	Map(230, 2, RW, PA);
	T("move to FIXED dest that is mapped (replaces)", Mremap(P(230), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, (Map(240, 4, PROT_READ, PA), P(241))));
	show("dest replaced", 228, 246);
	Map(250, 2, RW, PA); touch(250, 2);
	T("move next to compatible unfaulted vma", Mremap(P(250), 2 * PG, 2 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, (Map(260, 2, RW, PA), P(262))));
	show("moved faulted next to unfaulted", 258, 266);
}

static void t_madvise(void) {
	sec("5. madvise");
	window();
	Map(0, 2, RW, PA);
	T("unknown advice 999", madvise(P(0), PG, 999));
	T("unaligned start", madvise(P(0) + 1, PG, MADV_DONTNEED));
	T("len 0", madvise(P(0), 0, MADV_DONTNEED));
	T("unmapped range DONTNEED", madvise(P(100), PG, MADV_DONTNEED));
	T("unmapped range unknown advice 999", madvise(P(100), PG, 999));
	T("unmapped range NORMAL", madvise(P(100), PG, MADV_NORMAL));
	Map(10, 2, RW, PA); Map(13, 2, RW, PA);
	T("DONTFORK over [10,15) with hole at 12", madvise(P(10), 5 * PG, MADV_DONTFORK));
	show("after DONTFORK over hole", 8, 17);
	Map(16, 2, RW, PA); Map(19, 2, RW, PA);
	T("DONTFORK over [17,21) hole at 18", madvise(P(17), 4 * PG, MADV_DONTFORK));
	show("after DONTFORK [17,21)", 15, 22);
	Map(24, 2, RW, PA); touch(24, 2); mlock(P(24), 2 * PG);
	T("DONTNEED on mlocked", madvise(P(24), 2 * PG, MADV_DONTNEED));
	T("FREE on mlocked", madvise(P(24), 2 * PG, MADV_FREE));
	show("mlocked after failed DONTNEED", 24, 26);
	T("DONTNEED_LOCKED(24) on mlocked", madvise(P(24), 2 * PG, 24));
	show("mlocked after DONTNEED_LOCKED", 24, 26);
	munlock(P(24), 2 * PG);
	Map(30, 2, RW, SA);
	T("WIPEONFORK on MAP_SHARED anon", madvise(P(30), 2 * PG, MADV_WIPEONFORK));
	Map(33, 2, RW, PA);
	T("WIPEONFORK on private anon", madvise(P(33), 2 * PG, MADV_WIPEONFORK));
	show("private anon WIPEONFORK", 33, 35);
	Map(40, 2, PROT_READ, PA);
	T("POPULATE_WRITE on PROT_READ", madvise(P(40), 2 * PG, MADV_POPULATE_WRITE));
	T("POPULATE_READ on PROT_READ", madvise(P(40), 2 * PG, MADV_POPULATE_READ));
	Map(45, 2, PROT_NONE, PA);
	T("POPULATE_READ on PROT_NONE", madvise(P(45), 2 * PG, MADV_POPULATE_READ));
	T("POPULATE_WRITE on PROT_NONE", madvise(P(45), 2 * PG, MADV_POPULATE_WRITE));
	T("POPULATE_WRITE on unmapped", madvise(P(100), PG, MADV_POPULATE_WRITE));
	Map(48, 2, RW, PA);
	T("POPULATE_WRITE on RW", madvise(P(48), 2 * PG, MADV_POPULATE_WRITE));
	show("RW after POPULATE_WRITE", 48, 50);
	Map(50, 2, RW, SA);
	T("FREE on MAP_SHARED anon", madvise(P(50), 2 * PG, MADV_FREE));
	T("DONTNEED on MAP_SHARED anon", madvise(P(50), 2 * PG, MADV_DONTNEED));
	T("REMOVE on MAP_SHARED anon", madvise(P(50), 2 * PG, MADV_REMOVE));
	T("REMOVE on private anon", madvise(P(0), 2 * PG, MADV_REMOVE));
	Map(55, 2, RW, PA);
	T("DONTDUMP", madvise(P(55), 2 * PG, MADV_DONTDUMP));
	show("DONTDUMP", 55, 57);
	T("DODUMP on anon", madvise(P(55), 2 * PG, MADV_DODUMP));
	Map(60, 4, RW, PA);
	T("DONTFORK middle [61,63)", madvise(P(61), 2 * PG, MADV_DONTFORK));
	show("DONTFORK middle split", 60, 64);
	T("DOFORK middle [61,63) (re-merge?)", madvise(P(61), 2 * PG, MADV_DOFORK));
	show("DOFORK re-merge", 60, 64);
	Map(65, 2, RW, PA);
	T("RANDOM", madvise(P(65), PG, MADV_RANDOM));
	T("SEQUENTIAL", madvise(P(66), PG, MADV_SEQUENTIAL));
	show("RANDOM/SEQUENTIAL", 65, 67);
	Map(70, 2, RW, PA);
	T("HUGEPAGE", madvise(P(70), PG, MADV_HUGEPAGE));
	T("NOHUGEPAGE", madvise(P(71), PG, MADV_NOHUGEPAGE));
	show("HUGEPAGE/NOHUGEPAGE", 70, 72);
	Map(75, 2, RW, PA); touch(75, 2);
	T("DONTNEED private faulted", madvise(P(75), 2 * PG, MADV_DONTNEED));
	printf("  after DONTNEED P(75)[0]=%d\n", *(volatile char *)P(75));
	T("FREE private", madvise(P(75), 2 * PG, MADV_FREE));
	Map(80, 4, RW, PA);
	T("GUARD_INSTALL(102) middle page", madvise(P(81), PG, 102));
	show("guard installed", 80, 84);
	pm("guard page P(81)", P(81));
	T("DONTNEED across hole, unmapped tail", madvise(P(82), 4 * PG, MADV_DONTNEED));
}

static void t_mlock(void) {
	sec("6. mlock / mlock2");
	window();
	Map(0, 4, RW, PA);
	T("mlock unaligned start P(0)+1, len PG", mlock(P(0) + 1, PG));
	show("after mlock(P(0)+1, PG)", 0, 4);
	T("mlock len 0", mlock(P(3), 0));
	T("mlock unmapped", mlock(P(100), PG));
	Map(10, 2, RW, PA); Map(13, 2, RW, PA);
	T("mlock range with hole [10,15)", mlock(P(10), 5 * PG));
	show("after mlock over hole", 8, 17);
	T("mlock2 flags 2", Mlock2(P(0), PG, 2));
	Map(20, 2, RW, PA);
	T("mlock2 MLOCK_ONFAULT", Mlock2(P(20), 2 * PG, MLOCK_ONFAULT));
	show("MLOCK_ONFAULT", 20, 22);
	T("munlock unaligned", munlock(P(0) + 1, PG));
	T("munlock unmapped", munlock(P(100), PG));
	show("after munlock", 0, 4);
	T("munlockall", munlockall());
	T("mlockall(0)", mlockall(0));
	T("mlockall(8) bad flag", mlockall(8));
}

static void t_mseal(void) {
	sec("7. mseal");
	window();
	Map(0, 2, RW, PA);
	T("flags 1", Mseal(P(0), PG, 1));
	T("unaligned start", Mseal(P(0) + 1, PG, 0));
	T("unaligned len 1", Mseal(P(1), 1, 0));
	show("after mseal(P(1),1)", 0, 2);
	T("unmapped range", Mseal(P(100), PG, 0));
	T("len 0", Mseal(P(0), 0, 0));
	Map(5, 2, RW, PA); Map(8, 2, RW, PA);
	T("range with hole", Mseal(P(5), 5 * PG, 0));
	show("after mseal over hole", 4, 11);
	B += 10 * PG; /* shift window so pages 10..14 below are fresh: [10,14) in this shifted frame */
	Map(10, 4, RW, PA); touch(10, 4);
	T("mseal middle [11,13)", Mseal(P(11), 2 * PG, 0));
	show("sealed middle", 10, 14);
	T("mseal again (idempotent?)", Mseal(P(11), 2 * PG, 0));
	T("munmap sealed", munmap(P(11), PG));
	T("munmap range incl. sealed [10,14)", munmap(P(10), 4 * PG));
	show("after munmap attempts", 10, 14);
	T("mprotect sealed R", mprotect(P(11), PG, PROT_READ));
	T("mprotect sealed same prot RW", mprotect(P(11), PG, RW));
	T("mprotect [10,14) incl sealed", mprotect(P(10), 4 * PG, PROT_READ));
	show("after mprotect attempts (was [10,11) changed?)", 10, 14);
	T("mprotect [12,14) sealed first", mprotect(P(12), 2 * PG, PROT_READ));
	show("after mprotect [12,14)", 10, 14);
	T("madvise DONTFORK [10,14) (non-destructive)", madvise(P(10), 4 * PG, MADV_DONTFORK));
	T("madvise DOFORK [10,14)", madvise(P(10), 4 * PG, MADV_DOFORK));
	T("mremap sealed shrink", Mremap(P(11), 2 * PG, PG, 0, 0));
	T("mremap sealed grow", Mremap(P(12), PG, 2 * PG, 0, 0));
	T("mremap sealed move", Mremap(P(11), PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(20)));
	T("mremap unsealed onto sealed (dest sealed)", Mremap(P(10), PG, PG, MREMAP_MAYMOVE | MREMAP_FIXED, P(11)));
	T("mmap MAP_FIXED over sealed", mmap(P(11), PG, RW, PA | MAP_FIXED, -1, 0));
	T("madvise DONTNEED on sealed RW anon", madvise(P(11), PG, MADV_DONTNEED));
	T("madvise FREE on sealed RW anon", madvise(P(11), PG, MADV_FREE));
	T("madvise DONTFORK on sealed", madvise(P(11), PG, MADV_DONTFORK));
	T("madvise DONTNEED [10,14) on partly sealed", madvise(P(10), 4 * PG, MADV_DONTNEED));
	show("sealed after madvise", 10, 14);
	B -= 10 * PG;
	Map(30, 2, RW, PA); touch(30, 2); mprotect(P(30), 2 * PG, PROT_READ);
	T("mseal R-only anon", Mseal(P(30), 2 * PG, 0));
	T("madvise DONTNEED on sealed R-only anon", madvise(P(30), PG, MADV_DONTNEED));
	T("madvise FREE on sealed R-only anon", madvise(P(30), PG, MADV_FREE));
	T("madvise WILLNEED on sealed R-only anon", madvise(P(30), PG, MADV_WILLNEED));
	T("mlock sealed", mlock(P(30), PG));
	show("sealed R", 30, 32);
	munlock(P(30), PG);
	Map(40, 2, RW, SA);
	T("mseal shared anon", Mseal(P(40), 2 * PG, 0));
	T("madvise DONTNEED on sealed shared anon (RW)", madvise(P(40), PG, MADV_DONTNEED));
	Map(45, 2, PROT_READ, SA);
	Mseal(P(45), 2 * PG, 0);
	T("madvise DONTNEED on sealed shared anon (R)", madvise(P(45), PG, MADV_DONTNEED));
	show("sealed shared", 40, 47);
}

static unsigned long start_brk(void) {
	char buf[4096]; int fd = open("/proc/self/stat", O_RDONLY); ssize_t n = read(fd, buf, sizeof buf - 1); close(fd);
	buf[n > 0 ? n : 0] = 0;
	char *p = strrchr(buf, ')'); int field = 2; unsigned long v = 0;
	for (; *p && field < 47; p++) if (*p == ' ') field++;
	sscanf(p, "%lu", &v); return v; /* field 47 = start_brk */
}

static void t_brk(void) {
	sec("8. brk");
	unsigned long sb = start_brk();
	long cur = syscall(SYS_brk, 0);
	B = (char *)sb;
	printf("  start_brk=%#lx  brk(0)=%#lx (cur-start_brk=%ld)\n", sb, cur, cur - (long)sb);
	show("heap before growth", -2, 20);
	T("brk(cur + 4p + 100) (grow, unaligned)", syscall(SYS_brk, cur + 4 * PG + 100));
	show("heap after growth", -2, 20);
	T("brk(0) now", syscall(SYS_brk, 0));
	*(volatile char *)(cur + 100) = 1;
	T("brk(start_brk - 1p) (below start)", syscall(SYS_brk, sb - PG));
	T("brk(start_brk + 1p) shrink", syscall(SYS_brk, sb + PG));
	show("heap after shrink to 1p", -2, 20);
	T("brk(start_brk) (shrink to empty)", syscall(SYS_brk, sb));
	show("heap at start_brk", -2, 20);
	T("brk(huge 0x7fff00000000)", syscall(SYS_brk, 0x7fff00000000UL));
	T("brk(start_brk+2p) again", syscall(SYS_brk, sb + 2 * PG));
	show("heap regrown", -2, 20);
	void *sb_ = sbrk(0);
	printf("  glibc sbrk(0)=%p (base%+ldp)\n", sb_, ((char *)sb_ - B) / PG);
	T("glibc brk(start_brk - 1p) wrapper", brk((void *)(sb - PG)));
	T("mmap MAP_FIXED_NOREPLACE right after brk end", mmap((void *)(sb + 2 * PG), PG, RW, PA | MAP_FIXED_NOREPLACE, -1, 0));
	show("heap + adjacent anon", -2, 20);
	T("brk grow into mmapped page", syscall(SYS_brk, sb + 4 * PG));
	munmap((void *)(sb + 2 * PG), PG);
}

static void t_fork(void) {
	sec("9. fork + adjacent mmap (LTP vma01)");
	window();
	Map(0, 3, RW, PA); touch(0, 3);
	Map(10, 3, RW, PA);
	Map(20, 3, RW, PA); touch(20, 3);
	fflush(stdout);
	pid_t c = fork();
	if (c == 0) {
		Map(3, 3, RW, PA);
		show("[child] parent-faulted [0,3) + child mmap [3,6)", 0, 7);
		touch(3, 3);
		show("[child] ... after child faults [3,6)", 0, 7);
		Map(13, 3, RW, PA);
		show("[child] parent-unfaulted [10,13) + child mmap [13,16)", 10, 17);
		touch(20, 1);
		Map(23, 3, RW, PA);
		show("[child] parent-faulted [20,23), child wrote (COW) then mmap [23,26)", 20, 27);
		fflush(stdout);
		_exit(0);
	}
	waitpid(c, NULL, 0);
	Map(3, 3, RW, PA);
	show("[parent after child exit] faulted [0,3) + parent mmap [3,6)", 0, 7);
	Map(30, 3, RW, PA); touch(30, 3);
	fflush(stdout);
	int pp[2]; pipe(pp);
	c = fork();
	if (c == 0) { char ch; read(pp[0], &ch, 1); _exit(0); }
	Map(33, 3, RW, PA);
	show("[parent while child alive] faulted [30,33) + parent mmap [33,36)", 30, 37);
	write(pp[1], "x", 1); waitpid(c, NULL, 0);
}

static void t_pagemap(void) {
	sec("10. /proc/self/pagemap + /proc/kpagecount");
	window();
	Map(0, 5, RW, PA);
	volatile char c = *(volatile char *)P(1); (void)c;
	*(volatile char *)P(2) = 1;
	Map(10, 1, RW, SA); *(volatile char *)P(10) = 1;
	Map(12, 1, RW, SA); c = *(volatile char *)P(12);
	pm("unfaulted P(0)", P(0));
	pm("read-faulted P(1) (zero page?)", P(1));
	pm("written P(2)", P(2));
	pm("MAP_SHARED anon written P(10)", P(10));
	pm("MAP_SHARED anon read-only-faulted P(12)", P(12));
	pm("unmapped P(100)", P(100));
	uint64_t pfn2 = pagemap(P(2)) & ((1ULL << 55) - 1);
	fflush(stdout);
	int pp[2], qq[2]; pipe(pp); pipe(qq);
	pid_t ch = fork();
	if (ch == 0) {
		pm("[child] P(2) after fork", P(2));
		pm("[child] P(1) after fork", P(1));
		write(qq[1], "r", 1);
		char x; read(pp[0], &x, 1);
		pm("[child] P(2) after parent COW-wrote", P(2));
		*(volatile char *)P(2) = 3;
		pm("[child] P(2) after child wrote too", P(2));
		_exit(0);
	}
	char x; read(qq[0], &x, 1);
	pm("[parent] P(2) after fork, before COW", P(2));
	printf("  kpagecount(pfn of P(2) pre-fork=%#llx) now=%lld\n", (unsigned long long)pfn2, (long long)kpagecount(pfn2));
	pm("[parent] P(1) zero page after fork", P(1));
	pm("[parent] P(10) shared after fork", P(10));
	*(volatile char *)P(2) = 2;
	pm("[parent] P(2) after parent write (COW)", P(2));
	printf("  kpagecount(old pfn %#llx)=%lld\n", (unsigned long long)pfn2, (long long)kpagecount(pfn2));
	fflush(stdout);
	write(pp[1], "x", 1); waitpid(ch, NULL, 0);
	printf("  kpagecount(old pfn %#llx) after child exit=%lld\n", (unsigned long long)pfn2, (long long)kpagecount(pfn2));
	fflush(stdout);
}

static void t_misc(void) {
	sec("11. sysctls");
	const char *f[] = {"/proc/sys/vm/max_map_count", "/proc/sys/vm/mmap_min_addr", "/proc/sys/vm/overcommit_memory",
	                   "/proc/sys/kernel/randomize_va_space", "/sys/kernel/mm/transparent_hugepage/enabled", NULL};
	for (int i = 0; f[i]; i++) {
		char buf[256] = {0}; int fd = open(f[i], O_RDONLY);
		if (fd >= 0) { read(fd, buf, sizeof buf - 1); close(fd); }
		printf("  %s = %s", f[i], buf[0] ? buf : "(unreadable)\n");
	}
}

int main(int argc, char **argv) {
	static char obuf[1 << 16];
	setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
	const char *only = argc > 1 ? argv[1] : NULL;
#define RUN(n, f) if (!only || !strcmp(only, n)) f()
	RUN("mmap", t_mmap);
	RUN("munmap", t_munmap);
	RUN("mprotect", t_mprotect);
	RUN("mremap", t_mremap);
	RUN("madvise", t_madvise);
	RUN("mlock", t_mlock);
	RUN("mseal", t_mseal);
	RUN("brk", t_brk);
	RUN("fork", t_fork);
	RUN("pagemap", t_pagemap);
	RUN("misc", t_misc);
	fflush(stdout);
	return 0;
}
