/* After fork of a PMD THP, the child writes page 1 (its PMD is split, page 1 copied):
 * what pagemap and kpagecount say of the child's pages 0-3. 6.18 (CONFIG_PAGE_MAPCOUNT):
 * a pte-mapped page the parent's PMD maps too has count 2 and no PM_MMAP_EXCLUSIVE
 * (fs/proc/task_mmu.c __folio_page_mapped_exclusively(): folio_precise_page_mapcount()
 * counts the PMD). Needs THP enabled=madvise (the default here); changes no knob. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#define SZ (2UL << 20)
static uint64_t pm(void *a) { uint64_t e = 0; int fd = open("/proc/self/pagemap", O_RDONLY); pread(fd, &e, 8, (uintptr_t)a / 4096 * 8); close(fd); return e; }
static uint64_t kc(uint64_t pfn) { uint64_t c = 0; int fd = open("/proc/kpagecount", O_RDONLY); pread(fd, &c, 8, pfn * 8); close(fd); return c; }
int main(void) {
	char *raw = mmap(NULL, 2 * SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p = (char *)(((uintptr_t)raw + SZ - 1) & ~(SZ - 1));
	madvise(p, SZ, MADV_HUGEPAGE);
	p[0] = 1;
	int pp[2]; pipe(pp);
	pid_t c = fork();
	if (c == 0) {
		p[4096] = 2;
		for (int i = 0; i < 4; i++) {
			uint64_t e = pm(p + i * 4096), pfn = e & ((1ULL << 55) - 1);
			printf("child page %d: pfn %#llx count %llu exclusive %d\n", i, (unsigned long long)pfn, (unsigned long long)kc(pfn), (int)((e >> 56) & 1));
		}
		fflush(stdout);
		write(pp[1], "x", 1);
		_exit(0);
	}
	char b; read(pp[0], &b, 1);
	waitpid(c, NULL, 0);
	return 0;
}
