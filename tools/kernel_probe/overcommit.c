/* overcommit.c - vm.overcommit_memory 0/1/2, Committed_AS and the charge points of mode 2
 * (docs/kernel-facts.md, "Memory locking limits and overcommit"). Build: gcc -O0 -o overcommit overcommit.c;
 * run as root. It switches vm.overcommit_memory to 2, then 1, for well under a second and puts
 * it back to 0 on exit (atexit); check /proc/sys/vm/overcommit_memory afterwards. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#define G (1UL<<30)
static long meminfo(const char*k){ FILE*f=fopen("/proc/meminfo","r"); char l[256]; long v=-1; size_t n=strlen(k); while(fgets(l,256,f)) if(!strncmp(l,k,n)&&l[n]==':') v=atol(l+n+1); fclose(f); return v; }
static const char* m(size_t len,int prot,int flags){ void*p=mmap(0,len,prot,flags|MAP_ANONYMOUS,-1,0); if(p==MAP_FAILED) return strerrorname_np(errno); munmap(p,len); return "ok"; }
static int setoc(const char*v){ FILE*f=fopen("/proc/sys/vm/overcommit_memory","w"); if(!f) return -1; fputs(v,f); return fclose(f); }
static void restore(void){ setoc("0"); }
int main(void){ setvbuf(stdout,0,_IONBF,0); atexit(restore);
  long ram=meminfo("MemTotal")*1024L;
  printf("mode0: RW private RAM+1G: %s\n", m(ram+G,PROT_READ|PROT_WRITE,MAP_PRIVATE));
  printf("mode0: RW private RAM-1G: %s\n", m(ram-G,PROT_READ|PROT_WRITE,MAP_PRIVATE));
  printf("mode0: RW NORESERVE 2*RAM: %s\n", m(2*ram,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_NORESERVE));
  printf("mode0: RW shared anon RAM+1G: %s\n", m(ram+G,PROT_READ|PROT_WRITE,MAP_SHARED));
  printf("mode0: RO private 2*RAM: %s\n", m(2*ram,PROT_READ,MAP_PRIVATE));
  long c0=meminfo("Committed_AS"); void*p=mmap(0,G,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); long c1=meminfo("Committed_AS");
  printf("mode0: Committed_AS delta for 1G RW private: %ld kB\n", c1-c0);
  mprotect(p,G,PROT_READ); printf("mode0: after mprotect RO: delta %ld kB\n", meminfo("Committed_AS")-c0); munmap(p,G);
  p=mmap(0,G,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0); c1=meminfo("Committed_AS"); mprotect(p,G,PROT_READ|PROT_WRITE);
  printf("mode0: RO 1G then mprotect RW: delta %ld kB\n", meminfo("Committed_AS")-c1); munmap(p,G);
  c0=meminfo("Committed_AS"); p=mmap(0,G,PROT_READ,MAP_SHARED|MAP_ANONYMOUS,-1,0); printf("mode0: shared anon RO 1G delta %ld kB\n", meminfo("Committed_AS")-c0); munmap(p,G);
  if(setoc("2")) { perror("set 2"); return 1; }
  long lim=meminfo("CommitLimit")*1024L;
  printf("mode2: CommitLimit %ld kB\n", lim/1024);
  printf("mode2: RW private limit+1G: %s\n", m(lim+G,PROT_READ|PROT_WRITE,MAP_PRIVATE));
  printf("mode2: RW NORESERVE limit+1G: %s\n", m(lim+G,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_NORESERVE));
  printf("mode2: RO private limit+1G: %s\n", m(lim+G,PROT_READ,MAP_PRIVATE));
  printf("mode2: shared anon RO limit+1G: %s\n", m(lim+G,PROT_READ,MAP_SHARED));
  p=mmap(0,lim+G,PROT_READ,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  printf("mode2: mprotect RO->RW limit+1G: %s\n", mprotect(p,lim+G,PROT_READ|PROT_WRITE)?strerrorname_np(errno):"ok"); munmap(p,lim+G);
  void*b0=sbrk(0); void*b1=(void*)syscall(12,(char*)b0+lim+G); printf("mode2: brk +limit+1G: %s\n", b1==b0?"unchanged":"moved");
  p=mmap(0,lim*6/10,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  printf("mode2: 60%% of limit RW: %s\n", p==MAP_FAILED?"fail":"ok");
  pid_t c=fork(); if(c==0) _exit(0); printf("mode2: fork with 60%% accounted: %s\n", c<0?strerrorname_np(errno):"ok"); if(c>0) waitpid(c,0,0);
  void*q=mmap(0,G,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  printf("mode2: mremap grow 60%% block by 45%%: %s\n", mremap(p,lim*6/10,lim*105/100,MREMAP_MAYMOVE)==MAP_FAILED?strerrorname_np(errno):"ok");
  (void)q;
  setoc("1");
  printf("mode1: RW private 4*RAM: %s\n", m(4*ram,PROT_READ|PROT_WRITE,MAP_PRIVATE));
  setoc("0");
  return 0;}
