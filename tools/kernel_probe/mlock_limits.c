/* mlock_limits.c - RLIMIT_MEMLOCK, CAP_IPC_LOCK and mlockall rules (docs/kernel-facts.md,
 * "Memory locking limits and overcommit"). Build: gcc -O0 -o mlock_limits mlock_limits.c; run as root.
 * Every case runs in a forked child that lowers its own RLIMIT_MEMLOCK and (for the unprivileged
 * cases) drops to uid 65534, so nothing of the caller's limits changes. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#define P 4096
static void set_lim(long bytes){ struct rlimit r={bytes,bytes}; if(setrlimit(RLIMIT_MEMLOCK,&r)) perror("setrlimit"); }
#define R(name, expr) do{ errno=0; long _r=(long)(expr); printf("%-48s -> %ld errno=%s\n", name, _r==-1?-1L:(_r==(long)MAP_FAILED?-1L:0L), _r==-1||_r==(long)MAP_FAILED?strerrorname_np(errno):"0"); }while(0)
static long vmlck(void){ FILE*f=fopen("/proc/self/status","r"); char l[256]; long v=-1; while(fgets(l,256,f)) if(!strncmp(l,"VmLck:",6)) v=atol(l+6); fclose(f); return v; }
static void unpriv(void){ if(setresuid(65534,65534,65534)) perror("setresuid"); }
int main(void){ setvbuf(stdout,0,_IONBF,0);
  pid_t c;
  /* unprivileged, limit 4 pages */
  if(!(c=fork())){ set_lim(4*P); unpriv();
    char*a=mmap(0,16*P,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
    R("mlock 4 pages (=limit)", mlock(a,4*P)); printf(" VmLck=%ld\n", vmlck());
    R("mlock same 4 pages again (overlap)", mlock(a,4*P));
    R("mlock pages 2..6 (2 new, total 6 > 4)", mlock(a+2*P,4*P));
    R("mlock 1 more page (5 > 4)", mlock(a+4*P,P)); printf(" VmLck=%ld\n", vmlck());
    R("mlock2 ONFAULT 1 more page", syscall(325,a+4*P,P,1));
    R("munlock all", munlock(a,16*P)); printf(" VmLck=%ld\n", vmlck());
    R("mmap MAP_LOCKED 5 pages (>4)", mmap(0,5*P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED,-1,0));
    R("mmap MAP_LOCKED 4 pages", mmap(0,4*P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED,-1,0)); printf(" VmLck=%ld\n", vmlck());
    R("mlockall(0)", mlockall(0));
    R("mlockall(MCL_ONFAULT)", mlockall(MCL_ONFAULT));
    R("mlockall(8)", mlockall(8));
    R("mlockall(MCL_CURRENT) total_vm>limit", mlockall(MCL_CURRENT)); printf(" VmLck=%ld\n", vmlck());
    R("mlockall(MCL_FUTURE)", mlockall(MCL_FUTURE));
    R("mmap 1 page under MCL_FUTURE (locked 4+1>4)", mmap(0,P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0));
    void*b0=sbrk(0); void*b1=(void*)syscall(12,(char*)b0+64*P); printf("%-48s -> %s\n","brk +64 pages under MCL_FUTURE", b1==b0?"unchanged":"moved");
    R("munlockall", munlockall()); printf(" VmLck=%ld\n", vmlck());
    R("mmap 1 page after munlockall", mmap(0,P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0));
    _exit(0);} waitpid(c,0,0);
  /* unprivileged, limit 0 */
  if(!(c=fork())){ set_lim(0); unpriv();
    char*a=mmap(0,4*P,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
    R("lim0: mlock 1 page", mlock(a,P));
    R("lim0: munlock 1 page", munlock(a,P));
    R("lim0: mlockall(MCL_FUTURE)", mlockall(MCL_FUTURE));
    R("lim0: munlockall", munlockall());
    R("lim0: mmap MAP_LOCKED", mmap(0,P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED,-1,0));
    _exit(0);} waitpid(c,0,0);
  /* root (CAP_IPC_LOCK), limit 0 */
  if(!(c=fork())){ set_lim(0);
    char*a=mmap(0,8*P,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
    R("cap, lim0: mlock 8 pages", mlock(a,8*P)); printf(" VmLck=%ld\n", vmlck());
    R("cap, lim0: mmap MAP_LOCKED", mmap(0,P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED,-1,0));
    R("cap, lim0: mlockall(MCL_CURRENT|MCL_FUTURE)", mlockall(MCL_CURRENT|MCL_FUTURE));
    _exit(0);} waitpid(c,0,0);
  /* fork after mlockall(MCL_FUTURE): child def_flags? */
  if(!(c=fork())){ set_lim(64*P); unpriv(); mlockall(MCL_FUTURE|MCL_ONFAULT);
    char*a=mmap(0,2*P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); printf(" ONFAULT future: VmLck=%ld (2 pages mapped, none touched)\n", vmlck());
    pid_t g=fork(); if(!g){ char*b=mmap(0,2*P,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); (void)b; printf(" forked child VmLck=%ld (MCL_FUTURE inherited?)\n", vmlck()); _exit(0);} waitpid(g,0,0);
    (void)a; _exit(0);} waitpid(c,0,0);
  return 0;}
