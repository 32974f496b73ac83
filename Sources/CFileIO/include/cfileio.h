#ifndef STARLING_CFILEIO_H
#define STARLING_CFILEIO_H

#include <stddef.h>
#include <sys/types.h>

/// pread that never waits for the disk (Linux preadv2 with RWF_NOWAIT): the bytes when they are
/// in the page cache; -1 with errno EAGAIN when reading them would block, or another errno
/// (EOPNOTSUPP, ENOSYS, EINVAL) where the kernel or file system cannot say.
ssize_t starling_pread_nowait(int fd, void *buf, size_t count, off_t offset);

#endif
