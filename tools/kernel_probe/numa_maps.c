/* /proc/PID/numa_maps of a private anonymous mapping before and after fork and a COW in
 * the child (issue 11: mapmax is the largest page mapcount gather_stats() met in the vma;
 * 6.18 with CONFIG_PAGE_MAPCOUNT reads folio_precise_page_mapcount(), for a PMD mapping
 * that of the head page only, pmd_page()). Cases: S, 16 small pages, 12 written and 4
 * read (the zero page); T0 and T1, a PMD THP (MADV_HUGEPAGE) whose child writes page 0
 * (the head) or page 1; Z, a huge zero PMD (a read in a MADV_HUGEPAGE vma); with the
 * argument "mthp", M, a 64 kB mTHP whose child writes pages 0-8 (numa_maps.sh sets
 * hugepages-64kB/enabled to always for it and restores it). Needs THP enabled=madvise
 * (the default here). Without the argument it changes no knob and runs as any user:
 *   gcc -O1 -o /tmp/numa_maps tools/kernel_probe/numa_maps.c && /tmp/numa_maps */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#define PG 4096UL
#define SZ (2UL << 20)

/* Prints the numa_maps line of the vma starting at addr, the address column dropped. */
static void show(const char *who, const char *step, const char *cas, char *addr)
{
	char line[4096];
	FILE *f = fopen("/proc/self/numa_maps", "r");
	while (fgets(line, sizeof line, f)) {
		unsigned long a = strtoul(line, NULL, 16);
		if (a == (uintptr_t)addr)
			printf("%s %s %s:%s", cas, who, step, strchr(line, ' '));
	}
	fclose(f);
	fflush(stdout);
}

static void step(int fd) { char b = 0; if (write(fd, &b, 1) != 1) _exit(2); }
static void wait_step(int fd) { char b; if (read(fd, &b, 1) != 1) _exit(2); }

/* The parent shows p, forks; the child shows it, writes pages cow to cow + n - 1, shows
 * it again; the parent shows it after each child step and after the child's exit. */
static void run(const char *cas, char *p, long cow, long n)
{
	int to_child[2], to_parent[2];
	if (pipe(to_child) || pipe(to_parent))
		exit(1);
	show("parent", "before-fork", cas, p);
	pid_t c = fork();
	if (c == 0) {
		show("child", "after-fork", cas, p);
		step(to_parent[1]);
		wait_step(to_child[0]);
		for (long i = cow; i < cow + n; i++)
			p[i * PG] = 7;
		show("child", "after-its-cow", cas, p);
		step(to_parent[1]);
		wait_step(to_child[0]);
		_exit(0);
	}
	wait_step(to_parent[0]);
	show("parent", "after-fork", cas, p);
	step(to_child[1]);
	wait_step(to_parent[0]);
	show("parent", "after-child-cow", cas, p);
	step(to_child[1]);
	waitpid(c, NULL, 0);
	show("parent", "after-child-exit", cas, p);
}

static char *thp(void)
{
	char *raw = mmap(NULL, 2 * SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = (char *)(((uintptr_t)raw + SZ - 1) & ~(SZ - 1));
	madvise(p, SZ, MADV_HUGEPAGE);  /* its own vma: the flags differ from the rest */
	return p;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "mthp")) {
		/* 16 pages 64 kB aligned, alone in its vma: holes on both sides. */
		char *raw = mmap(NULL, 48 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *m = (char *)(((uintptr_t)raw + 16 * PG) & ~(16 * PG - 1));
		munmap(m - PG, PG);
		munmap(m + 16 * PG, PG);
		m[0] = 1;
		run("M", m, 0, 9);
		return 0;
	}
	/* A hole on each side, so that no neighbouring anonymous vma merges with it. */
	char *s = mmap(NULL, 18 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap(s, PG);
	munmap(s + 17 * PG, PG);
	s += PG;
	volatile char sink = 0;
	for (int i = 0; i < 12; i++)
		s[i * PG] = 1;
	for (int i = 12; i < 16; i++)
		sink += s[i * PG];
	run("S", s, 0, 1);

	char *t0 = thp();
	t0[0] = 1;
	run("T0", t0, 0, 1);
	char *t1 = thp();
	t1[0] = 1;
	run("T1", t1, 1, 1);

	char *z = thp();
	sink += z[0];
	show("parent", "read-fault", "Z", z);
	(void)sink;
	return 0;
}
