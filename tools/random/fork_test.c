// tools/test runs this: a forked child must never hand out the id its parent hands out next
// (the id pool of Sources/CDugongRandom lives in a page the kernel wipes in a child). Swift
// cannot fork, hence C. Without MADV_WIPEONFORK both would draw the same bytes.
#include "dugong_random.h"
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    unsigned char parent[16], child[16];
    if (dugong_random_id(parent) != 0) return 2;  // the pool now holds ids
    int pipe_ends[2];
    if (pipe(pipe_ends) != 0) return 2;
    pid_t pid = fork();
    if (pid < 0) return 2;
    if (pid == 0) {
        if (dugong_random_id(child) != 0 || write(pipe_ends[1], child, 16) != 16) _exit(2);
        _exit(0);
    }
    if (dugong_random_id(parent) != 0 || read(pipe_ends[0], child, 16) != 16) return 2;
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 2;
    if (memcmp(parent, child, 16) == 0) {
        fprintf(stderr, "fork_test: the child drew the parent's next id\n");
        return 1;
    }
    printf("fork_test: parent and child draw different ids\n");
    return 0;
}
