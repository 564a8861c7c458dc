/* Guard regions across fork for shared and file vmas, and the "gu" VmFlag (docs/kernel-facts.md
 * section 12): gcc -O0 -o gf guard_fork.c && ./gf */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#define PG 4096
static sigjmp_buf jb; static volatile int sigcode, signo;
static void h(int s, siginfo_t *si, void *u){ signo=s; sigcode=si->si_code; siglongjmp(jb,1);}
static int tryread(volatile char *p){ signo=0; if(sigsetjmp(jb,1)) return signo*100+sigcode; char c=*p; (void)c; return -1;}
static void maps(char *a, char *b){ char cmd[200]; snprintf(cmd,200,"awk '/^%lx|^%lx/{print; f=1; next} f&&/VmFlags/{print; f=0}' /proc/%d/smaps", (unsigned long)a,(unsigned long)b, getpid()); system(cmd);}
int main(){ setvbuf(stdout,0,_IONBF,0); struct sigaction sa={0}; sa.sa_sigaction=h; sa.sa_flags=SA_SIGINFO; sigaction(SIGSEGV,&sa,0);
 char *a=mmap(0,2*PG,PROT_READ|PROT_WRITE,MAP_SHARED|MAP_ANONYMOUS,-1,0); madvise(a,PG,102);
 if(!fork()){ printf("shared-anon child guard read %d\n", tryread(a)); _exit(0);} wait(0);
 int fd=open("/dev/shm/fmg",O_RDWR|O_CREAT|O_TRUNC,0600); ftruncate(fd,2*PG);
 char *f=mmap(0,2*PG,PROT_READ,MAP_PRIVATE,fd,0); printf("private file install %d\n", madvise(f,PG,102));
 if(!fork()){ printf("private-file child guard read %d\n", tryread(f)); _exit(0);} wait(0);
 char *w=mmap(0,4*PG,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); madvise(w+PG,PG,102); maps(w,w);
 madvise(w+PG,PG,103); printf("after remove:\n"); maps(w,w);
 char *n=mmap(w+4*PG,PG,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE,-1,0); printf("adjacent mmap after (merge?):\n"); maps(w,n);
 mprotect(w,PG,PROT_READ); printf("after split by mprotect:\n"); maps(w,w+PG);
 char *s=mmap(0,PG,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); syscall(462,s,PG,0); printf("guard on sealed rw %d\n", madvise(s,PG,102));
 unlink("/dev/shm/fmg"); return 0; }
