/* MADV_FREE of a PMD-mapped THP (mm/huge_memory.c madvise_free_huge_pmd()): which
 * folios become lazily freeable, and when the PMD is split. No knob is changed
 * (`enabled` madvise; the vma has MADV_HUGEPAGE). Run as root:
 *   gcc -O1 -o /tmp/thp_madv_free tools/kernel_probe/thp_madv_free.c && /tmp/thp_madv_free
 * Each case prints LazyFree and AnonHugePages of the vma (kB) and the thp_split_pmd and
 * thp_split_page_failed deltas (vmstat is global: other processes may add to them).
 * "three": A forks B and C (C gets no mm-id slot), B exits, A unmaps the THP: C maps it
 * alone, with the "maybe mapped shared" bit still set (section 23). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define H (2UL << 20)
#define PG 4096UL

static long vmstat(const char *key)
{
	char name[64];
	long v, r = -1;
	FILE *f = fopen("/proc/vmstat", "r");
	while (fscanf(f, "%63s %ld", name, &v) == 2)
		if (!strcmp(name, key))
			r = v;
	fclose(f);
	return r;
}

static long smaps(char *addr, const char *key)
{
	char line[256];
	unsigned long s, e;
	int in = 0;
	long v = -1;
	FILE *f = fopen("/proc/self/smaps", "r");
	while (fgets(line, sizeof line, f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = s <= (uintptr_t)addr && (uintptr_t)addr < e;
		else if (in && !strncmp(line, key, strlen(key)))
			v = atol(line + strlen(key));
	}
	fclose(f);
	return v;
}

static uint64_t pfn_of(char *addr)
{
	uint64_t e = 0;
	FILE *f = fopen("/proc/self/pagemap", "r");
	fseek(f, (uintptr_t)addr / PG * 8, SEEK_SET);
	fread(&e, 8, 1, f);
	fclose(f);
	return e & ((1ULL << 55) - 1);
}

static char *thp(void)
{
	char *raw = mmap(NULL, 2 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = (char *)(((uintptr_t)raw + H - 1) & ~(H - 1));
	munmap(raw, p - raw);
	munmap(p + H, raw + H - p);
	madvise(p, H, MADV_HUGEPAGE);
	memset(p, 1, H);
	if (smaps(p, "AnonHugePages:") != 2048) {
		printf("no THP\n");
		exit(1);
	}
	return p;
}

static long failed0;

static void report(const char *what, char *p, long split0)
{
	printf("%-46s LazyFree %4ld AnonHugePages %4ld split_pmd +%ld split_page_failed +%ld\n",
	       what, smaps(p, "LazyFree:"), smaps(p, "AnonHugePages:"),
	       vmstat("thp_split_pmd") - split0, vmstat("thp_split_page_failed") - failed0);
	fflush(stdout);
}

/* A child that sleeps until killed, or with do_free waits for a byte, frees, reports. */
static pid_t child(int fd, char *p, int do_free)
{
	pid_t pid = fork();
	if (pid == 0) {
		char b;
		if (read(fd, &b, 1) == 1 && do_free) {
			long s = vmstat("thp_split_pmd");
			madvise(p, H, MADV_FREE);
			report("three: C, alone, frees the whole THP", p, s);
		}
		_exit(0);
	}
	return pid;
}

int main(void)
{
	char *p;
	long s;
	int fd[2];
	pid_t b, c;

	failed0 = vmstat("thp_split_page_failed");
	p = thp();
	s = vmstat("thp_split_pmd");
	madvise(p, H, MADV_FREE);
	report("alone: whole THP", p, s);
	madvise(p, 4 * PG, MADV_FREE);
	report("alone, then pages 0-3", p, s);
	printf("%-44s Rss %ld\n", "", smaps(p, "Rss:"));
	munmap(p, H);

	p = thp();
	munmap(p, H);
	p = mmap(p, H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	madvise(p, H, MADV_HUGEPAGE);
	s = *(volatile char *)p;
	s = vmstat("thp_split_pmd");
	madvise(p, 4 * PG, MADV_FREE);
	report("huge zero PMD: pages 0-3", p, s);
	printf("%-44s pfn(page 5) - pfn(page 0) = %ld\n", "", (long)(pfn_of(p + 5 * PG) - pfn_of(p)));
	madvise(p, H, MADV_FREE);
	report("huge zero PMD: whole", p, s);
	madvise(p, 4 * PG, MADV_COLD);
	report("huge zero PMD: MADV_COLD of pages 0-3", p, s);
	madvise(p, 4 * PG, MADV_PAGEOUT);
	report("huge zero PMD: MADV_PAGEOUT of pages 0-3", p, s);
	munmap(p, H);

	p = thp();
	pipe(fd);
	b = child(fd[0], p, 0);
	s = vmstat("thp_split_pmd");
	madvise(p, H, MADV_FREE);
	report("shared, live child: whole THP", p, s);
	madvise(p, 4 * PG, MADV_FREE);
	report("shared, live child: pages 0-3", p, s);
	write(fd[1], "x", 1);
	waitpid(b, NULL, 0);
	madvise(p, H, MADV_FREE);
	report("after the child's exit: whole THP", p, s);
	munmap(p, H);

	p = thp();
	pipe(fd);
	b = child(fd[0], p, 0);
	int fc[2];
	pipe(fc);
	c = child(fc[0], p, 1);
	write(fd[1], "x", 1);
	waitpid(b, NULL, 0);
	munmap(p, H);
	write(fc[1], "x", 1);
	waitpid(c, NULL, 0);

	p = thp();
	pipe(fd);
	b = child(fd[0], p, 0);
	pipe(fc);
	c = child(fc[0], p, 0);
	write(fd[1], "x", 1);
	waitpid(b, NULL, 0);
	write(fc[1], "x", 1);
	waitpid(c, NULL, 0);
	s = vmstat("thp_split_pmd");
	madvise(p, H, MADV_FREE);
	report("control: B, then C exit; A frees the whole THP", p, s);
	return 0;
}
