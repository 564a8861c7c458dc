/* How a fork chain whose processes all stay alive grows the kernel's anon_vma_chains
 * (docs/kernel-facts.md section 21; benchmarks/bench_scaling.py fork-chain).
 *
 * One process writes one private anonymous page and forks; each child writes the page
 * (its COW copy) and forks the next, DEPTH deep; every process stays alive until the
 * last one exists. Reports the time to build the chain, the anon_vma_chain and anon_vma
 * slab objects it added (/proc/slabinfo, so run as root on a quiet machine), and the
 * time for every process to exit. Run at several depths: "./fork_chain_avcs 500 1000".
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Active objects of a slab cache, or -1. */
static long slab_objects(const char *name)
{
	char line[512], cache[128];
	long active = -1, n;
	FILE *f = fopen("/proc/slabinfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "%127s %ld", cache, &n) == 2 && !strcmp(cache, name))
			active = n;
	fclose(f);
	return active;
}

static void chain(int depth, int ready_fd, int go_fd, char *page)
{
	/* Recursion ends at depth 0; each level is a new process. */
	char c;
	pid_t child;

	page[0] = 'c';			/* this process's COW copy */
	if (depth == 0) {
		write(ready_fd, "r", 1);	/* the whole chain exists */
		read(go_fd, &c, 1);		/* EOF when the starter lets go */
		_exit(0);
	}
	child = fork();
	if (child < 0) {		/* tell the starter, which reports it */
		write(ready_fd, "f", 1);
		read(go_fd, &c, 1);
		_exit(1);
	}
	if (child == 0)
		chain(depth - 1, ready_fd, go_fd, page);
	read(go_fd, &c, 1);
	waitpid(child, NULL, 0);	/* exits from the newest up, as each child is reaped */
	_exit(0);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);	/* nothing buffered is copied by fork */
	for (int i = 1; i < argc; i++) {
		int depth = atoi(argv[i]), ready[2], go[2];
		char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		long avc0, av0, avc1, av1;
		double t0, t1, t2;
		pid_t first;
		char c;

		page[0] = 'p';
		if (pipe(ready) || pipe(go))
			return 1;
		avc0 = slab_objects("anon_vma_chain");
		av0 = slab_objects("anon_vma");
		t0 = now();
		first = fork();
		if (first == 0) {
			close(ready[0]);
			close(go[1]);
			chain(depth, ready[1], go[0], page);
		}
		close(ready[1]);
		close(go[0]);
		if (read(ready[0], &c, 1) != 1 || c != 'r') {
			printf("depth %5d: a fork failed\n", depth);
			close(go[1]);
			waitpid(first, NULL, 0);
			return 1;
		}
		t1 = now();
		avc1 = slab_objects("anon_vma_chain");
		av1 = slab_objects("anon_vma");
		close(go[1]);			/* every process reads EOF and exits */
		waitpid(first, NULL, 0);
		t2 = now();
		printf("depth %5d: build %8.3f s, exit %8.3f s, anon_vma_chain +%ld, "
		       "anon_vma +%ld, d(d+1)/2 = %ld\n", depth, t1 - t0, t2 - t1,
		       avc1 - avc0, av1 - av0, (long)depth * (depth + 1) / 2);
		close(ready[0]);
		munmap(page, 4096);
	}
	return 0;
}
