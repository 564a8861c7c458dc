/* Does the mm-id "maybe mapped shared" bit stay set once a third mm has come and gone?
 * (include/linux/rmap.h folio_add/sub_large_mapcount(), mm/memory.c
 * __wp_can_reuse_large_anon_folio()). Run by mm_id_stuck.sh with hugepages-64kB=always.
 *
 * A faults a 64 kB mTHP (16 pages) and forks B and C: A takes mm-id slot 0, B slot 1,
 * C no slot (the shared bit is set). "two": B exits, A writes page 3 -- with two mms the
 * bit clears when B leaves, so A reuses the page in place. "three": B exits, then A
 * unmaps the folio; C now maps it alone, but neither free slot holds C's mappings, so
 * the bit stays: C's write to page 3 copies it (a new pfn) although C maps it alone.
 * Controls: C (slotless) exits first, then B, or B first, then C: either way A's slot
 * owns every mapping again, so A's write reuses the page.
 * Prints one line per case: pfn before, pfn after, reused/copied. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define SZ (64 * 1024)
#define PG 4096

static uint64_t pfn_of(void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	pread(fd, &e, 8, (uintptr_t)addr / PG * 8);
	close(fd);
	return (e & (1ULL << 63)) ? e & ((1ULL << 55) - 1) : 0;
}

static char *folio(void)
{
	char *raw = mmap(NULL, 2 * SZ, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = (char *)(((uintptr_t)raw + SZ - 1) & ~(uintptr_t)(SZ - 1));
	p[0] = 1;
	for (int i = 1; i < 16; i++)
		if (pfn_of(p + i * PG) != pfn_of(p) + i) {
			printf("no 64 kB folio (is hugepages-64kB/enabled always?)\n");
			exit(1);
		}
	return p;
}

static void report(const char *what, char *page)
{
	uint64_t before = pfn_of(page);
	page[1] = 2;
	uint64_t after = pfn_of(page);
	printf("%s: pfn %#llx -> %#llx: %s\n", what, (unsigned long long)before,
	       (unsigned long long)after, before == after ? "reused" : "copied");
	fflush(stdout);
}

/* A child that waits for one byte on fd, then (C) writes its page 3, and exits. */
static pid_t child(int fd, char *p, int c)
{
	pid_t pid = fork();
	if (pid == 0) {
		char b;
		read(fd, &b, 1);
		if (c)
			report("three: C alone writes page 3", p + 3 * PG);
		_exit(0);
	}
	return pid;
}

int main(void)
{
	int pb[2], pc[2];

	/* two mms */
	char *p = folio();
	pipe(pb);
	pid_t b = child(pb[0], p, 0);
	write(pb[1], "x", 1);
	waitpid(b, NULL, 0);
	report("two: A writes page 3 after B left", p + 3 * PG);
	munmap(p, SZ);

	/* three mms */
	p = folio();
	pipe(pb);
	pipe(pc);
	b = child(pb[0], p, 0);
	pid_t c = child(pc[0], p, 1);
	write(pb[1], "x", 1);
	waitpid(b, NULL, 0);
	munmap(p, SZ);
	write(pc[1], "x", 1);
	waitpid(c, NULL, 0);

	/* three mms, the slotless one leaving first: the slot owner is exact again */
	p = folio();
	b = child(pb[0], p, 0);
	c = child(pc[0], p, 0);
	write(pc[1], "x", 1);
	waitpid(c, NULL, 0);
	write(pb[1], "x", 1);
	waitpid(b, NULL, 0);
	report("three, C and B left: A writes page 3", p + 3 * PG);

	/* three mms, B (slot 1) then the slotless C leave: C's unmap finds slot 0 owning
	 * every mapping (the check runs for an mm with no slot too) */
	p = folio();
	b = child(pb[0], p, 0);
	c = child(pc[0], p, 0);
	write(pb[1], "x", 1);
	waitpid(b, NULL, 0);
	write(pc[1], "x", 1);
	waitpid(c, NULL, 0);
	report("three, B and C left: A writes page 3", p + 3 * PG);
	return 0;
}
