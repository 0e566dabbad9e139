// Package lazyfs is a FUSE file system for tests that loses, at a simulated
// power cut, what was not fsynced, as Jepsen's LazyFS does. The tests run a
// real agent process with its data directory on the mount, cut the power at
// random moments and check what the store kept.
//
// # What it is
//
// A mount shows the content of a backing directory. The backing directory
// is the disk: it holds only what was made durable. Everything the
// processes on the mount change goes first into a live view held in
// memory, which they read back as on any file system, and reaches the
// backing directory only when an fsync makes it durable:
//
//   - File data. Every write and truncate of a file (through write(2),
//     ftruncate(2), O_TRUNC, or a shared mmap that the kernel writes back)
//     is a pending operation of that file, in order. fsync(2),
//     fdatasync(2) and msync(2) of the file do them to its backing copy.
//     A file's size is data: it changes with the writes and truncates.
//   - The namespace. create, mkdir, unlink, rmdir, rename and link are
//     changes in one journal, in the order they were made, as a journaling
//     file system's. The durable namespace is always a prefix of it. Which
//     fsync commits the journal is the [Model]: in [Ordered] (the default,
//     ext4 and XFS) the fsync of a file or of a directory commits it up to
//     the last change that touched that file or directory; in [Strict]
//     (POSIX's letter) only a directory's fsync does, up to its last
//     change. Data made durable while a file has no durable name (Strict)
//     waits in memory and reaches the disk with the name, or is lost.
//   - Permission bits are written with the file's data at its fsync;
//     times are not kept (the backing file's own times are shown after a
//     restart). Symbolic links, device files, xattrs, fallocate and
//     RENAME_EXCHANGE are not supported (EINVAL, ENOTSUP).
//
// # A power cut
//
// [FS.PowerOff] is the instant of the cut: every later operation answers
// EIO, so nothing is acknowledged after it. [FS.PowerOffAfter] arms a cut
// at the n-th mutating operation (write, truncate, fsync, create, mkdir,
// unlink, rmdir, rename, link), which then fails: a cut between a write
// and its fsync, or between a rename and the directory's fsync. The test
// kills the processes (kill -9), then [FS.Restart] unmounts, writes into the
// backing directory what survives, and mounts it again with an empty page
// cache, as a machine boots.
//
// What survives is everything made durable, and, unless [Options.LoseAll],
// some of what was pending, because a real disk writes back on its own
// too. For cut number k, a generator seeded with ([Options.Seed], k)
// draws:
//
//   - the namespace journal: with probability 1/2 nothing more; otherwise
//     a further uniformly random number of its pending changes, in order
//     (a journal commits in order, never a later change without the
//     earlier ones);
//   - then, for each file with pending data operations and a durable name,
//     in inode order, one of three outcomes with equal probability: none of
//     them (what LazyFS does); a random prefix of them, the next write
//     possibly torn at a random 512-byte sector boundary inside it (the
//     disk wrote back in order and stopped in the middle of a write); or
//     each independently with probability 1/2 (the disk wrote the pages
//     back in any order). A file whose name did not survive loses its data
//     with it.
//
// The same seed and the same pending state give the same outcome. The
// pending state itself depends on the timing of the processes on the
// mount, so a seed replays a campaign's schedule (the moments of its cuts
// and these draws), not the exact bytes in flight.
//
// # Costs and limits
//
// The live view holds every file's content in memory in 4 KiB pages
// (holes take none), and every pending operation a copy of its bytes; a
// restart reads the whole backing directory back (skipping holes). That
// suits stores of tens of megabytes. One mutex serialises every request.
// Mounting needs root and /dev/fuse; [MountT] skips a test that cannot
// mount, with the reason, unless FIELDSYNC_REQUIRE_FUSE=1.
package lazyfs
