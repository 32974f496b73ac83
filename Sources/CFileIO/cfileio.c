#define _GNU_SOURCE
#include "cfileio.h"
#include <errno.h>
#include <sys/uio.h>

ssize_t starling_pread_nowait(int fd, void *buf, size_t count, off_t offset) {
#if defined(__linux__) && defined(RWF_NOWAIT)
    struct iovec iov = { buf, count };
    return preadv2(fd, &iov, 1, offset, RWF_NOWAIT);
#else
    (void)fd; (void)buf; (void)count; (void)offset;
    errno = EOPNOTSUPP;
    return -1;
#endif
}
