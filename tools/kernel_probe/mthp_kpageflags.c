/* kpageflags and kpagecount of each page of one 64 KiB mTHP on 6.18: which bits are the
 * page's own and which the folio's (head's), for a fresh folio, after fork + a COW of
 * page 3 in the child (parent's view), and after munmap of page 5 (the unmapped page's
 * frame is read through the pfn recorded before), and after the parent reuses page 2. Run by mthp_rules.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#define P 4096UL
#define K64 (64 * 1024UL)
static int pm, kf, kc;
static uint64_t rd(int fd, uint64_t idx) { uint64_t v = 0; pread(fd, &v, 8, idx * 8); return v; }
static void show(const char *step, uint64_t *pfns) {
  printf("%s\n", step);
  for (int i = 0; i < 16; i++)
    printf("  page %2d kpageflags %#llx kpagecount %llu\n", i,
           (unsigned long long)rd(kf, pfns[i]), (unsigned long long)rd(kc, pfns[i]));
}
int main(void) {
  setvbuf(stdout, 0, _IONBF, 0);
  pm = open("/proc/self/pagemap", O_RDONLY); kf = open("/proc/kpageflags", O_RDONLY);
  kc = open("/proc/kpagecount", O_RDONLY);
  char *p = mmap(0, 2 * K64, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  char *a = (char *)(((uintptr_t)p + K64 - 1) & ~(K64 - 1));
  uint64_t pfns[16];
  a[0] = 1;
  for (int i = 0; i < 16; i++) pfns[i] = rd(pm, (uintptr_t)(a + i * P) / P) & ((1ULL << 55) - 1);
  show("fresh folio (page 0 written)", pfns);
  pid_t c = fork();
  if (!c) { a[3 * P] = 1; sleep(1); _exit(0); }
  usleep(300000);
  show("parent, child forked and wrote page 3 (child alive)", pfns);
  waitpid(c, 0, 0);
  munmap(a + 5 * P, P);
  show("parent, child exited, page 5 unmapped", pfns);
  a[2 * P] = 1;
  show("parent then wrote page 2 (reused in place)", pfns);
  return 0;
}
