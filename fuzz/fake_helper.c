/*
 * A stand-in for poolgate-helper, for fuzz_pam: it reads the one request
 * its caller sends (type, 4-byte big-endian length, payload), so that the
 * caller's write never meets a closed socket, then copies the file
 * "answer" that lies next to its own executable to stdout and exits.
 * The spawner fixes argv and the environment, so the answer is found from
 * /proc/self/exe: fuzz_pam copies this program into its private directory,
 * next to the answer it rewrites for each input.  Not instrumented.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* Read (or with `out`, write) exactly len bytes. */
static int exactly(int fd, unsigned char *buf, size_t len, bool out)
{
    for (size_t done = 0; done < len;) {
        ssize_t n = out ? write(fd, buf + done, len - done) : read(fd, buf + done, len - done);
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

int main(void)
{
    char path[4096];
    unsigned char buf[8192];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - sizeof("answer"));
    if (n <= 0)
        return 2;
    path[n] = '\0';
    char *slash = strrchr(path, '/');
    if (!slash)
        return 2;
    strcpy(slash + 1, "answer");
    if (exactly(STDIN_FILENO, buf, 5, false) < 0)
        return 2;
    size_t len = (size_t)buf[1] << 24 | (size_t)buf[2] << 16 | (size_t)buf[3] << 8 | buf[4];
    while (len > 0) {
        size_t part = len < sizeof(buf) ? len : sizeof(buf);
        if (exactly(STDIN_FILENO, buf, part, false) < 0)
            return 2;
        len -= part;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 2;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        if (exactly(STDOUT_FILENO, buf, (size_t)n, true) < 0)
            return 1;
    return n < 0 ? 2 : 0;
}
