/*
 * A page followed by an inaccessible one, for tests of code that reads or
 * writes in blocks: data placed to end exactly at the boundary faults on
 * any access past its end, with or without a sanitizer.
 */
#ifndef PG_GUARDPAGE_H
#define PG_GUARDPAGE_H

#include <sys/mman.h>
#include <unistd.h>

struct guarded {
    unsigned char *page;
    size_t size;
};

static inline void guarded_open(struct guarded *g)
{
    g->size = (size_t)sysconf(_SC_PAGESIZE);
    void *m = mmap(NULL, 2 * g->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    g->page = m;
    assert_int_equal(mprotect(g->page + g->size, g->size, PROT_NONE), 0);
}

/* Room for n bytes that end at the inaccessible page. */
static inline unsigned char *guarded_end(const struct guarded *g, size_t n)
{
    assert_true(n <= g->size);
    return g->page + g->size - n;
}

/* A copy of n bytes that ends at the inaccessible page. */
static inline const char *guarded_copy(const struct guarded *g, const void *data, size_t n)
{
    unsigned char *at = guarded_end(g, n);
    memcpy(at, data, n);
    return (const char *)at;
}

static inline void guarded_close(struct guarded *g)
{
    munmap(g->page, 2 * g->size);
}

#endif
