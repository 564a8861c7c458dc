/* MADV_POPULATE_WRITE/READ of a 2 MiB-aligned MADV_HUGEPAGE range: PMD THP or not?
   (kernel-facts 22 N). Run as root or not: gcc -O1 -o /tmp/p populate_thp.c && /tmp/p */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
static long anonhuge(void *p) {
  FILE *f = fopen("/proc/self/smaps", "r"); char line[512]; unsigned long lo, hi; int in = 0; long kb = -1;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) in = (unsigned long)p >= lo && (unsigned long)p < hi;
    else if (in && sscanf(line, "AnonHugePages: %ld", &kb) == 1) break;
  }
  fclose(f); return kb;
}
int main(void) {
  for (int adv = 0; adv < 2; adv++) {
    char *raw = mmap(0, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *p = (char *)(((unsigned long)raw + (2 << 20) - 1) & ~((2UL << 20) - 1));
    madvise(p, 4 << 20, MADV_HUGEPAGE);
    int r = madvise(p, 2 << 20, adv ? MADV_POPULATE_READ : MADV_POPULATE_WRITE);
    printf("%s: rc %d AnonHugePages %ld kB\n", adv ? "POPULATE_READ" : "POPULATE_WRITE", r, anonhuge(p));
    char *q = mmap(0, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(raw, 8 << 20); (void)q;
  }
  return 0;
}
