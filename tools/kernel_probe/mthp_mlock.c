/* kpageflags MLOCKED (M) and UNEVICTABLE (u) of the 16 pages of two 64 kB mTHP folios on
 * 6.18 after mlock of 4 of its pages and of all of them. Run by mthp_rules.sh. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdint.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#define P 4096UL
#define K64 (64*1024UL)
static int pm, kf;
static uint64_t rd(int fd, uint64_t i){uint64_t v=0;pread(fd,&v,8,i*8);return v;}
static void show(const char *s, char *a){printf("%-28s", s);for(int i=0;i<16;i++){uint64_t e=rd(pm,(uintptr_t)(a+i*P)/P);uint64_t pfn=e&((1ULL<<55)-1);uint64_t f=rd(kf,pfn);printf(" %s%s", (f>>33)&1?"M":"-", (f>>18)&1?"u":"-");}printf("\n");}
int main(void){
  pm=open("/proc/self/pagemap",O_RDONLY); kf=open("/proc/kpageflags",O_RDONLY);
  char *p=mmap(0,3*K64,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  char *a=(char*)(((uintptr_t)p+K64-1)&~(K64-1));
  a[0]=1; a[K64]=1;
  mlock(a+4*P,4*P); show("mlock 4..7 of folio A", a);
  mlock(a+K64,K64); show("mlock all of folio B", a+K64);
  return 0;
}
