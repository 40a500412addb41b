/*
 * LD_PRELOAD shim for the CLI tests: what poolgate sends to syslog is
 * appended to $PG_SYSLOG_FILE, one line per message as "PRIORITY MESSAGE",
 * so a test can read the audit lines without a syslog daemon.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

void openlog(const char *ident, int option, int facility)
{
    (void)ident;
    (void)option;
    (void)facility;
}

void closelog(void)
{
}

void vsyslog(int priority, const char *fmt, va_list ap)
{
    const char *path = getenv("PG_SYSLOG_FILE");
    char line[4096];
    int n = snprintf(line, sizeof(line), "%d ", priority);
    if (!path || n < 0)
        return;
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len =
        (size_t)n + (size_t)m < sizeof(line) - 2 ? (size_t)n + (size_t)m : sizeof(line) - 2;
    line[len++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) {
        ssize_t w = write(fd, line, len);
        (void)w;
        close(fd);
    }
}

void syslog(int priority, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsyslog(priority, fmt, ap);
    va_end(ap);
}

void __syslog_chk(int priority, int flag, const char *fmt, ...);

void __syslog_chk(int priority, int flag, const char *fmt, ...)
{
    (void)flag;
    va_list ap;
    va_start(ap, fmt);
    vsyslog(priority, fmt, ap);
    va_end(ap);
}
