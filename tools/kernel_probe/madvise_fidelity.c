/* Probes for docs/kernel-facts.md section 12 (PROT_NONE, guard regions, MADV_REMOVE,
 * MADV_FREE/COLD/POPULATE, MAP_POPULATE/MAP_LOCKED, WIPEONFORK). Run as root (pagemap
 * pfns, kpageflags): gcc -O0 -o mf madvise_fidelity.c && ./mf. Uses /dev/shm (tmpfs) and
 * the current directory (ext4) for files it removes again. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <unistd.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/resource.h>
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#define MADV_GUARD_REMOVE 103
#endif
#define PG 4096
static sigjmp_buf jb; static volatile int sigcode, signo;
static void h(int s, siginfo_t *si, void *u){ signo=s; sigcode=si->si_code; siglongjmp(jb,1);}
/* returns -1 if ok read, else si_code*/
static int tryread(volatile char *p, char *out){ signo=0; if(sigsetjmp(jb,1)) return signo*100+sigcode; char c=*p; if(out)*out=c; return -1;}
static int trywrite(volatile char *p, char v){ signo=0; if(sigsetjmp(jb,1)) return signo*100+sigcode; *p=v; return -1;}
static uint64_t pm(void *a){ int fd=open("/proc/self/pagemap",O_RDONLY); uint64_t v=0; pread(fd,&v,8,((uintptr_t)a/PG)*8); close(fd); return v;}
static uint64_t kpf(uint64_t pfn){ int fd=open("/proc/kpageflags",O_RDONLY); uint64_t v=0; pread(fd,&v,8,pfn*8); close(fd); return v;}
static long minflt(void){ struct rusage r; getrusage(RUSAGE_SELF,&r); return r.ru_minflt;}
#define RW (PROT_READ|PROT_WRITE)
#define PA (MAP_PRIVATE|MAP_ANONYMOUS)
#define SA (MAP_SHARED|MAP_ANONYMOUS)
#define MA(n,prot,fl) mmap(NULL,(n)*PG,prot,fl,-1,0)
#define R(x) do{ int _r=(x); printf("%-60s -> %d %s\n", #x, _r, _r<0?strerrorname_np(errno):""); }while(0)
int main(){
  setvbuf(stdout,0,_IONBF,0); struct sigaction sa={0}; sa.sa_sigaction=h; sa.sa_flags=SA_SIGINFO; sigaction(SIGSEGV,&sa,0); sigaction(SIGBUS,&sa,0);
  char c; char *a;
  printf("== prot\n");
  a=MA(1,RW,PA); a[0]='x'; mprotect(a,PG,PROT_NONE); printf("PROT_NONE read present: %d pagemap %#lx\n", tryread(a,0), pm(a));
  mprotect(a,PG,RW); c=0; printf("back to RW read: %d c=%c\n", tryread(a,&c), c);
  a=MA(1,PROT_EXEC,PA); printf("mmap exec-only read: %d\n", tryread(a,0));
  a=MA(1,RW,PA); a[0]=1; mprotect(a,PG,PROT_EXEC); printf("mprotect exec-only read present: %d write %d\n", tryread(a,0), trywrite(a,1));
  a=MA(1,PROT_WRITE,PA); printf("write-only read: %d write %d\n", tryread(a,0), trywrite(a,1));
  a=MA(1,RW,PA); a[0]=1; mprotect(a,PG,PROT_READ); mprotect(a,PG,RW); { long f=minflt(); a[0]=2; printf("R->RW exclusive anon write faults: %ld\n", minflt()-f);}
  a=MA(1,RW,PA); a[0]=1; mprotect(a,PG,PROT_NONE); mprotect(a,PG,RW); { long f=minflt(); a[0]=2; printf("NONE->RW exclusive anon write faults: %ld\n", minflt()-f);}
  a=MA(1,RW,PA); a[0]=1; mprotect(a,PG,PROT_NONE); mprotect(a,PG,PROT_READ); { long f=minflt(); c=a[0]; printf("NONE->R read faults: %ld\n", minflt()-f);}
  a=MA(1,RW,PA); a[0]=1; if(!fork()){ mprotect(a,PG,PROT_READ); mprotect(a,PG,RW); long f=minflt(); a[0]=2; printf("child R->RW shared COW write faults: %ld\n", minflt()-f); _exit(0);} wait(0);
  a=MA(1,RW,SA); a[0]=1; mprotect(a,PG,PROT_READ); mprotect(a,PG,RW); { long f=minflt(); a[0]=2; printf("shared anon R->RW write faults: %ld\n", minflt()-f);}
  printf("== guard\n");
  a=MA(4,RW,PA); a[PG]='g'; R(madvise(a+PG,PG,MADV_GUARD_INSTALL)); printf("guard read: %d write %d pagemap %#lx\n", tryread(a+PG,0), trywrite(a+PG,1), pm(a+PG));
  R(madvise(a,4*PG,MADV_DONTNEED)); printf("after DONTNEED guard read: %d\n", tryread(a+PG,0));
  if(!fork()){ printf("child guard read: %d\n", tryread(a+PG,0)); _exit(0);} wait(0);
  R(madvise(a+PG,PG,MADV_GUARD_REMOVE)); c=9; printf("after remove read: %d c=%d pm %#lx\n", tryread(a+PG,&c), c, pm(a+PG));
  a=MA(4,RW,PA); R(madvise(a+PG,PG,MADV_GUARD_INSTALL)); R(madvise(a,4*PG,MADV_WIPEONFORK));
  if(!fork()){ printf("wipeonfork child guard read: %d\n", tryread(a+PG,0)); _exit(0);} wait(0);
  a=MA(4,RW,PA); R(madvise(a+PG,PG,MADV_GUARD_INSTALL)); { char *b=mremap(a,4*PG,8*PG,MREMAP_MAYMOVE); printf("mremap moved %d guard read new: %d pm %#lx\n", b!=a, tryread(b+PG,0), pm(b+PG)); 
    char *d=mmap(b,PG*8,RW,PA|MAP_FIXED,-1,0); printf("remap fixed read: %d\n", tryread(d+PG,0));}
  a=MA(2,RW,PA); R(madvise(a,4*PG,MADV_GUARD_INSTALL));
  a=MA(2,RW,PA); mlock(a,2*PG); R(madvise(a,PG,MADV_GUARD_INSTALL));
  a=MA(2,RW,SA); R(madvise(a,PG,MADV_GUARD_INSTALL)); printf("shared anon guard read %d\n", tryread(a,0));
  a=MA(2,PROT_NONE,PA); R(madvise(a,PG,MADV_GUARD_INSTALL));
  a=MA(2,PROT_READ,PA); R(madvise(a,PG,MADV_GUARD_INSTALL));
  a=MA(2,RW,PA); R(madvise(a,PG,MADV_GUARD_INSTALL)); R(madvise(a,2*PG,MADV_POPULATE_READ)); R(madvise(a,2*PG,MADV_POPULATE_WRITE)); printf("pm a+1 after populate fail %#lx\n", pm(a+PG));
  a=MA(2,RW,PA); R(madvise(a,PG,MADV_GUARD_INSTALL)); R(mlock(a,2*PG)); printf("pm a+1 after mlock %#lx\n", pm(a+PG)); R(munlock(a,2*PG));
  a=MA(2,RW,PA); R(madvise(a,PG,MADV_GUARD_INSTALL)); R(madvise(a,PG,MADV_FREE)); R(madvise(a,PG,MADV_PAGEOUT)); R(madvise(a,PG,MADV_COLD)); printf("guard still %d\n", tryread(a,0));
  a=MA(2,RW,PA); R(madvise(a,PG,MADV_GUARD_REMOVE)); R(madvise(a+8*PG,PG,MADV_GUARD_REMOVE));
  a=MA(2,RW,PA); R(madvise(a,PG,MADV_GUARD_INSTALL)); R(mprotect(a,PG,PROT_READ)); printf("guard after mprotect read %d\n", tryread(a,0));
  printf("== remove\n");
  int fd=open("/dev/shm/fmprobe",O_RDWR|O_CREAT|O_TRUNC,0600); ftruncate(fd,4*PG);
  char *s=mmap(0,4*PG,RW,MAP_SHARED,fd,0); char *pv=mmap(0,4*PG,RW,MAP_PRIVATE,fd,0);
  s[0]='A'; s[PG]='B'; c=pv[0]; pv[PG]='P'; R(madvise(pv,PG,MADV_REMOVE));
  R(madvise(s,2*PG,MADV_REMOVE)); { char buf[2]={9,9}; pread(fd,buf,1,0); printf("pread after remove %d, s[0]=%d pv[0]=%d pv[PG]=%c size=%ld pm(s) %#lx\n", buf[0], s[0], pv[0], pv[PG], lseek(fd,0,SEEK_END), pm(s));}
  int fdr=open("/dev/shm/fmprobe",O_RDONLY); char *sr=mmap(0,PG,PROT_READ,MAP_SHARED,fdr,0); R(madvise(sr,PG,MADV_REMOVE));
  int fdr2=open("/dev/shm/fmprobe",O_RDWR); char *sr2=mmap(0,PG,PROT_READ,MAP_SHARED,fdr2,0); R(madvise(sr2,PG,MADV_REMOVE));
  a=MA(2,RW,SA); mlock(a,PG); R(madvise(a,PG,MADV_REMOVE));
  a=MA(2,RW,SA); a[0]=5; if(!fork()){ R(madvise(a,PG,MADV_REMOVE)); _exit(0);} wait(0); printf("shared anon after child REMOVE: %d\n", a[0]);
  R(madvise(s,8*PG,MADV_REMOVE));
  int fe=open("./mf_ext4file",O_RDWR|O_CREAT|O_TRUNC,0600); ftruncate(fe,2*PG); char *se=mmap(0,2*PG,RW,MAP_SHARED,fe,0); se[0]=1; R(madvise(se,PG,MADV_REMOVE)); printf("ext4 after remove %d\n", se[0]);
  printf("== free\n");
  a=MA(3,RW,PA); a[0]='a'; a[PG]='b'; a[2*PG]='c'; R(madvise(a,3*PG,MADV_FREE)); printf("after FREE a[0]=%c pm %#lx\n", a[0], pm(a));
  a[PG]='B'; R(madvise(a,3*PG,MADV_PAGEOUT)); printf("after PAGEOUT a0=%d a1=%c a2=%d pm0 %#lx pm1 %#lx\n", a[0], a[PG], a[2*PG], pm(a), pm(a+PG));
  a=MA(1,RW,PA); a[0]='a'; if(!fork()){ R(madvise(a,PG,MADV_FREE)); R(madvise(a,PG,MADV_PAGEOUT)); printf("child shared FREE+PAGEOUT a0=%c\n", a[0]); _exit(0);} wait(0);
  a=MA(1,PROT_READ,PA); c=a[0]; R(madvise(a,PG,MADV_FREE)); printf("zero page after FREE pm %#lx\n", pm(a));
  R(madvise(pv,PG,MADV_FREE));
  a=MA(1,RW,PA); a[0]='q'; R(madvise(a,PG,MADV_PAGEOUT)); printf("PAGEOUT no swap: a0=%c pm %#lx\n", a[0], pm(a));
  printf("== cold\n");
  a=MA(1,RW,PA); a[0]=1; c=a[0]; { uint64_t p=pm(a)&((1ULL<<55)-1); printf("kpf before %#lx\n", kpf(p)); R(madvise(a,PG,MADV_COLD)); printf("kpf after %#lx pm %#lx\n", kpf(p), pm(a)); }
  s[3*PG]=1; { uint64_t p=pm(s+3*PG)&((1ULL<<55)-1); printf("shm kpf before %#lx\n", kpf(p)); R(madvise(s+3*PG,PG,MADV_COLD)); printf("shm kpf after %#lx\n", kpf(p)); }
  printf("== populate\n");
  R(madvise(s,8*PG,MADV_POPULATE_READ));
  { char *f=mmap(0,8*PG,PROT_READ,MAP_SHARED,fd,0); R(madvise(f,8*PG,MADV_POPULATE_READ)); printf("pm page3 %#lx\n", pm(f+3*PG)); R(madvise(f+4*PG,PG,MADV_POPULATE_READ));}
  { char *f=mmap(0,8*PG,PROT_READ,MAP_SHARED|MAP_POPULATE,fd,0); printf("MAP_POPULATE past EOF -> %p\n", f);}
  R(madvise(pv+2*PG,PG,MADV_POPULATE_WRITE)); printf("private file populate_write pm %#lx\n", pm(pv+2*PG));
  a=MA(1,PROT_WRITE,PA); R(madvise(a,PG,MADV_POPULATE_READ)); R(madvise(a,PG,MADV_POPULATE_WRITE));
  a=MA(1,PROT_EXEC,PA); R(madvise(a,PG,MADV_POPULATE_READ)); printf("exec pm %#lx\n", pm(a));
  a=MA(1,RW,PA); R(madvise(a,PG,MADV_POPULATE_READ)); printf("populate_read anon pm %#lx\n", pm(a));
  a=MA(3,RW,PA); munmap(a+PG,PG); R(madvise(a,3*PG,MADV_POPULATE_WRITE)); printf("first page after hole populate pm %#lx third %#lx\n", pm(a), pm(a+2*PG));
  a=MA(2,RW,PA); mprotect(a+PG,PG,PROT_READ); R(madvise(a,2*PG,MADV_POPULATE_WRITE)); printf("first page after EINVAL pm %#lx\n", pm(a));
  a=MA(2,RW,PA); c=a[0]; R(madvise(a,PG,MADV_POPULATE_WRITE)); printf("populate_write over zero page pm %#lx\n", pm(a));
  printf("== map_populate\n");
  a=mmap(0,PG,PROT_READ,PA|MAP_POPULATE,-1,0); printf("R anon MAP_POPULATE pm %#lx\n", pm(a));
  a=mmap(0,PG,RW,PA|MAP_POPULATE,-1,0); printf("RW anon MAP_POPULATE pm %#lx\n", pm(a));
  a=mmap(0,PG,PROT_NONE,PA|MAP_POPULATE,-1,0); printf("NONE anon MAP_POPULATE pm %#lx\n", pm(a));
  a=mmap(0,PG,PROT_NONE,PA|MAP_LOCKED,-1,0); printf("NONE anon MAP_LOCKED %p pm %#lx\n", a, pm(a));
  a=mmap(0,PG,RW,SA|MAP_POPULATE,-1,0); printf("RW shared MAP_POPULATE pm %#lx\n", pm(a));
  a=mmap(0,PG,RW,PA|MAP_POPULATE|MAP_NONBLOCK,-1,0); printf("POPULATE|NONBLOCK pm %#lx\n", pm(a));
  a=mmap(0,PG,PROT_READ,PA|MAP_LOCKED,-1,0); printf("R anon MAP_LOCKED pm %#lx\n", pm(a));
  { char *f=mmap(0,8*PG,RW,MAP_PRIVATE|MAP_POPULATE,fd,0); printf("private file RW MAP_POPULATE pm0 %#lx pm6 %#lx\n", pm(f), pm(f+6*PG));}
  printf("== wipe\n");
  a=MA(1,RW,PA); a[0]='w'; R(madvise(a,PG,MADV_WIPEONFORK)); if(!fork()){ printf("child wipe a0=%d\n", a[0]); _exit(0);} wait(0);
  R(madvise(a,PG,MADV_KEEPONFORK)); if(!fork()){ printf("child keep a0=%c\n", a[0]); _exit(0);} wait(0);
  R(madvise(pv,PG,MADV_WIPEONFORK)); R(madvise(pv,PG,MADV_KEEPONFORK)); a=MA(1,RW,SA); R(madvise(a,PG,MADV_KEEPONFORK));
  unlink("/dev/shm/fmprobe"); unlink("./mf_ext4file");
  return 0;
}
