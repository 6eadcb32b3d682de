# cython: language_level=3
"""The command runner in C, forked from the runner fork server (``_forkserver.py``).

The same supervisor as ``_runner.py`` (work.md §4.2), for the common case: the fork server
splits the parameters, finds the command and opens ``stdin`` and ``stdout`` in Python, then
:func:`fork_runner` forks and the child runs only the C below, never the interpreter again.
A Python child touches hundreds of the fork server's pages (reference counts), and every
touched page is copied; this child touches a few, which makes a unit's runner about 2 ms
cheaper. Anything unusual (parameters that cannot be split, a command not found) is left
to the Python runner, which the fork server uses then, and everywhere when extensions are
off (``RECEPTOR_NO_EXTENSIONS``).

What the child does, as ``_runner.run`` does: name itself ``rcpt-<unit id>``, become the
subreaper of its descendants, start the command in its session, leading a process group of
its own, with ``stdin`` as input and ``stdout`` for both output streams, keep
``Running: PID <pid>`` and the output size in the status file (every 250 ms while it
changes), reap the orphans it adopts, and write the final state; SIGINT or SIGTERM: SIGINT
to the command's group, SIGKILL to it after 10 s, SIGKILL to every process still below the
runner once the command has exited, then Failed ``Killed`` (the ``_runner`` docstring says
why). Status updates hold the ``status.lock`` flock and keep the record's ``WorkType`` and
``ExtraData`` byte for byte.
"""

from libc.errno cimport errno
from libc.stdlib cimport free, malloc

import os

cdef extern from *:
    """
    #include <ctype.h>
    #include <dirent.h>
    #include <errno.h>
    #include <fcntl.h>
    #include <poll.h>
    #include <signal.h>
    #include <spawn.h>
    #include <stdio.h>
    #include <stdlib.h>
    #include <string.h>
    #include <sys/file.h>
    #include <sys/prctl.h>
    #include <sys/signalfd.h>
    #include <sys/stat.h>
    #include <sys/syscall.h>
    #include <sys/wait.h>
    #include <time.h>
    #include <unistd.h>

    extern char **environ;

    #define RCPT_RUNNING 1
    #define RCPT_SUCCEEDED 2
    #define RCPT_FAILED 3
    #define RCPT_KILL_TIMEOUT_MS 10000
    #define RCPT_TREE_TIMEOUT_MS 2000
    #define RCPT_SIZE_INTERVAL_MS 250

    /* Go's names for signals (ProcessState.String() prints "signal: <name>"). */
    static const char *rcpt_signal_names[32] = {
        NULL, "hangup", "interrupt", "quit", "illegal instruction",
        "trace/breakpoint trap", "aborted", "bus error", "floating point exception",
        "killed", "user defined signal 1", "segmentation fault", "user defined signal 2",
        "broken pipe", "alarm clock", "terminated", "stack fault", "child exited",
        "continued", "stopped (signal)", "stopped", "stopped (tty input)",
        "stopped (tty output)", "urgent I/O condition", "CPU time limit exceeded",
        "file size limit exceeded", "virtual timer expired", "profiling timer expired",
        "window changed", "I/O possible", "power failure", "bad system call",
    };

    typedef struct {
        const char *status_path;
        const char *lock_path;
        int log_level; /* error 0, warning 1, info 2, debug 3 */
    } rcpt_unit;

    static void rcpt_log(const rcpt_unit *unit, int level, const char *name,
                         const char *message, long pid) {
        char stamp[32];
        time_t now;
        struct tm local;
        if (unit->log_level < level)
            return;
        now = time(NULL);
        localtime_r(&now, &local);
        strftime(stamp, sizeof stamp, "%Y/%m/%d %H:%M:%S", &local);
        printf("%s %s ", name, stamp);
        printf(message, pid);
        printf("\\n");
        fflush(stdout);
    }

    /* The whole file from offset 0, NUL-terminated; NULL on failure. */
    static char *rcpt_read_all(int fd, size_t *length) {
        size_t size = 0, capacity = 4096;
        char *buffer = malloc(capacity + 1);
        ssize_t got;
        if (buffer == NULL)
            return NULL;
        for (;;) {
            if (size == capacity) {
                char *bigger = realloc(buffer, capacity * 2 + 1);
                if (bigger == NULL) {
                    free(buffer);
                    return NULL;
                }
                buffer = bigger;
                capacity *= 2;
            }
            got = pread(fd, buffer + size, capacity - size, (off_t)size);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                free(buffer);
                return NULL;
            }
            if (got == 0)
                break;
            size += (size_t)got;
        }
        buffer[size] = 0;
        *length = size;
        return buffer;
    }

    static const char RCPT_TAIL_KEY[] = ",\\"WorkType\\":";
    static const char RCPT_SIZE_KEY[] = ",\\"StdoutSize\\":";
    static const char RCPT_DEFAULT_TAIL[] = ",\\"WorkType\\":\\"\\",\\"ExtraData\\":null}\\n";

    /* Read-modify-write of the status record under the lock. With state >= 0 the record
       gets State, Detail (a JSON string, quotes included) and StdoutSize; with state < 0
       only StdoutSize changes. WorkType and ExtraData are kept as they are on disk. A
       JSON string cannot hold the bytes `,"` (its quotes are escaped), so the first
       `,"WorkType":` is the key itself. */
    static int rcpt_update(const rcpt_unit *unit, int state, const char *detail,
                           long long size) {
        int lock_fd, fd, result = -1;
        size_t length = 0, head_length;
        char *old, *tail, *record;
        char head[1024];
        lock_fd = open(unit->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock_fd < 0)
            return -1;
        while (flock(lock_fd, LOCK_EX) < 0) {
            if (errno != EINTR) {
                close(lock_fd);
                return -1;
            }
        }
        fd = open(unit->status_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            goto unlock;
        old = rcpt_read_all(fd, &length);
        if (old == NULL)
            goto close_file;
        tail = strstr(old, RCPT_TAIL_KEY);
        if (state >= 0) {
            snprintf(head, sizeof head, "{\\"State\\":%d,\\"Detail\\":%s,\\"StdoutSize\\":%lld",
                     state, detail, size);
        } else {
            char *size_key = strstr(old, RCPT_SIZE_KEY);
            size_t keep;
            if (tail == NULL || size_key == NULL || size_key > tail)
                goto free_old; /* not a record this runner wrote: leave it alone */
            keep = (size_t)(size_key - old) + strlen(RCPT_SIZE_KEY);
            if (keep + 32 > sizeof head)
                goto free_old;
            memcpy(head, old, keep);
            snprintf(head + keep, sizeof head - keep, "%lld", size);
        }
        if (tail == NULL)
            tail = (char *)RCPT_DEFAULT_TAIL;
        head_length = strlen(head);
        record = malloc(head_length + strlen(tail) + 1);
        if (record == NULL)
            goto free_old;
        memcpy(record, head, head_length);
        strcpy(record + head_length, tail);
        length = strlen(record);
        if (pwrite(fd, record, length, 0) == (ssize_t)length && ftruncate(fd, (off_t)length) == 0)
            result = 0;
        free(record);
    free_old:
        free(old);
    close_file:
        close(fd);
    unlock:
        close(lock_fd);
        return result;
    }

    static long long rcpt_size(int fd) {
        struct stat info;
        return fstat(fd, &info) == 0 ? (long long)info.st_size : 0;
    }

    static long rcpt_elapsed_ms(const struct timespec *start) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
    }

    /* Reap every child that has exited, up to the command (which rcpt_supervise reaps). */
    static void rcpt_reap_orphans(pid_t command) {
        siginfo_t info;
        for (;;) {
            memset(&info, 0, sizeof info);
            if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) < 0 || info.si_pid == 0
                    || info.si_pid == command)
                return;
            waitpid(info.si_pid, NULL, 0);
        }
    }

    /* Reap every child that has exited (a runner leaves no zombies to its parent's reaper). */
    static void rcpt_reap_children(void) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
    }

    /* ppid, state and start time from /proc/<pid>/stat; -1 once it is gone. */
    static int rcpt_stat(pid_t pid, pid_t *ppid, char *state, unsigned long long *start) {
        char path[48], buffer[1024], *cursor;
        ssize_t got;
        int fd, field;
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1;
        got = read(fd, buffer, sizeof buffer - 1);
        close(fd);
        if (got <= 0)
            return -1;
        buffer[got] = 0;
        cursor = strrchr(buffer, ')'); /* the name may hold spaces and ")" */
        if (cursor == NULL || cursor[1] != ' ')
            return -1;
        cursor += 2;
        *state = cursor[0];
        for (field = 1; field <= 19; field++) {
            cursor = strchr(cursor, ' ');
            if (cursor == NULL)
                return -1;
            cursor++;
            if (field == 1)
                *ppid = (pid_t)strtol(cursor, NULL, 10);
        }
        *start = strtoull(cursor, NULL, 10);
        return 0;
    }

    typedef struct {
        pid_t pid, ppid;
        unsigned long long start;
        char state, below;
    } rcpt_proc;

    static int rcpt_by_pid(const void *a, const void *b) {
        pid_t x = ((const rcpt_proc *)a)->pid, y = ((const rcpt_proc *)b)->pid;
        return (x > y) - (x < y);
    }

    /* Every process in /proc, sorted by PID, with `below` set for those below `root`;
       NULL if /proc cannot be read. */
    static rcpt_proc *rcpt_table(pid_t root, size_t *count) {
        size_t size = 0, capacity = 256, i;
        rcpt_proc *table = malloc(capacity * sizeof *table), key, *parent;
        struct dirent *entry;
        DIR *dir;
        int changed;
        if (table == NULL)
            return NULL;
        dir = opendir("/proc");
        if (dir == NULL) {
            free(table);
            return NULL;
        }
        while ((entry = readdir(dir)) != NULL) {
            char *end;
            long pid = strtol(entry->d_name, &end, 10);
            if (entry->d_name[0] < '0' || entry->d_name[0] > '9' || *end != 0)
                continue;
            if (size == capacity) {
                rcpt_proc *bigger = realloc(table, capacity * 2 * sizeof *table);
                if (bigger == NULL)
                    break;
                table = bigger;
                capacity *= 2;
            }
            table[size].pid = (pid_t)pid;
            table[size].below = 0;
            if (rcpt_stat(table[size].pid, &table[size].ppid, &table[size].state,
                          &table[size].start) == 0)
                size++;
        }
        closedir(dir);
        qsort(table, size, sizeof *table, rcpt_by_pid);
        do { /* a pass per generation at most (parents are mostly found first) */
            changed = 0;
            for (i = 0; i < size; i++) {
                if (table[i].below)
                    continue;
                key.pid = table[i].ppid;
                parent = table[i].ppid == root ? NULL
                    : bsearch(&key, table, size, sizeof *table, rcpt_by_pid);
                if (table[i].ppid == root || (parent != NULL && parent->below)) {
                    table[i].below = 1;
                    changed = 1;
                }
            }
        } while (changed);
        *count = size;
        return table;
    }

    /* SIGKILL pid if it is still the process that started at `start`, through a pidfd so
       that a reused PID is never hit; -1 when it may not be signalled. */
    static int rcpt_kill_exactly(pid_t pid, unsigned long long start) {
        pid_t ppid;
        char state;
        unsigned long long now_start;
        int result = 0, pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0 && errno == ESRCH)
            return 0;
        /* without a pidfd (an old kernel, no descriptor left): a kill after the check */
        if (rcpt_stat(pid, &ppid, &state, &now_start) == 0 && now_start == start) {
            if (pidfd >= 0)
                result = (int)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
            else
                result = kill(pid, SIGKILL);
            result = result < 0 && errno == EPERM ? -1 : 0;
        }
        if (pidfd >= 0)
            close(pidfd);
        return result;
    }

    /* SIGKILL the command's process group (kill_group: not reaped yet, so its ID is not
       reused) and every process below the runner, until none is left or 2 s have passed. */
    static void rcpt_end_tree(const rcpt_unit *unit, pid_t command, int kill_group) {
        struct timespec start;
        rcpt_proc *table;
        size_t count, i;
        long left;
        int first = 1;
        pid_t self = getpid();
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            if (kill_group)
                kill(-command, SIGKILL);
            table = rcpt_table(self, &count);
            if (table == NULL)
                return;
            left = 0;
            for (i = 0; i < count; i++) {
                if (!table[i].below || table[i].state == 'Z' || table[i].state == 'X')
                    continue;
                if (first && table[i].pid != command)
                    rcpt_log(unit, 3, "DEBUG", "sending SIGKILL to pid %ld, left by the command",
                             (long)table[i].pid);
                if (rcpt_kill_exactly(table[i].pid, table[i].start) == 0)
                    left++;
                else if (first)
                    rcpt_log(unit, 1, "WARNING", "not permitted to kill pid %ld",
                             (long)table[i].pid);
            }
            free(table);
            first = 0;
            if (left == 0)
                return;
            if (rcpt_elapsed_ms(&start) > RCPT_TREE_TIMEOUT_MS) {
                rcpt_log(unit, 1, "WARNING", "%ld processes left by the command are still there",
                         left);
                return;
            }
            poll(NULL, 0, 10);
        }
    }

    /* SIGINT to the command's process group, then SIGKILL after 10 s (upstream's runner,
       which signals only the command). */
    static void rcpt_stop(const rcpt_unit *unit, pid_t pid, int pidfd) {
        struct pollfd watch = {pidfd, POLLIN, 0};
        struct timespec start;
        long elapsed;
        if (kill(-pid, SIGINT) < 0)
            return;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            elapsed = rcpt_elapsed_ms(&start);
            if (elapsed >= RCPT_KILL_TIMEOUT_MS)
                break;
            if (poll(&watch, 1, (int)(RCPT_KILL_TIMEOUT_MS - elapsed)) > 0)
                return;
        }
        rcpt_log(unit, 1, "WARNING", "timed out waiting for pid %ld to terminate with SIGINT",
                 (long)pid);
        rcpt_log(unit, 2, "INFO", "sending SIGKILL to pid %ld", (long)pid);
        kill(-pid, SIGKILL);
    }

    /* The child's whole life after the fork; returns its exit status. */
    static int rcpt_supervise(const rcpt_unit *unit, const char *path, char *const argv[],
                              int in_fd, int out_fd, const char *spawn_error) {
        posix_spawn_file_actions_t actions;
        posix_spawnattr_t attributes;
        sigset_t blocked, defaults, empty;
        struct pollfd watch[2];
        struct signalfd_siginfo info;
        char detail[256];
        pid_t pid;
        int error, pidfd, signal_fd, raw = 0, interrupted = 0, reaped = 0, state, code;
        long long size, current;

        /* SIGINT and SIGTERM are blocked since rcpt_child: take them from a signalfd. */
        sigemptyset(&blocked);
        sigaddset(&blocked, SIGINT);
        sigaddset(&blocked, SIGTERM);
        signal(SIGCHLD, SIG_DFL);
        signal_fd = signalfd(-1, &blocked, SFD_CLOEXEC | SFD_NONBLOCK);

        sigemptyset(&empty);
        sigemptyset(&defaults);
        sigaddset(&defaults, SIGINT);
        sigaddset(&defaults, SIGTERM);
        sigaddset(&defaults, SIGPIPE);
        sigaddset(&defaults, SIGXFSZ);
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, in_fd, 0);
        posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
        posix_spawn_file_actions_adddup2(&actions, out_fd, 2);
        posix_spawnattr_init(&attributes);
        posix_spawnattr_setsigmask(&attributes, &empty);
        posix_spawnattr_setsigdefault(&attributes, &defaults);
        posix_spawnattr_setpgroup(&attributes, 0); /* a group of its own, stopped as a whole */
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
                                 | POSIX_SPAWN_SETPGROUP);
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); /* orphans below come here, not to init */
        error = posix_spawn(&pid, path, &actions, &attributes, argv, environ);
        close(in_fd);
        if (error != 0) {
            /* spawn_error is the JSON string's start: "fork/exec <path>: */
            size_t at;
            const char *reason = strerror(error);
            snprintf(detail, sizeof detail, "%s", spawn_error);
            at = strlen(detail);
            for (; *reason && at + 2 < sizeof detail; reason++)
                detail[at++] = (char)tolower((unsigned char)*reason);
            detail[at++] = '"';
            detail[at] = 0;
            rcpt_update(unit, RCPT_FAILED, detail, 0);
            return 1;
        }
        size = rcpt_size(out_fd);
        snprintf(detail, sizeof detail, "\\"Running: PID %ld\\"", (long)pid);
        rcpt_update(unit, RCPT_RUNNING, detail, size);
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        watch[0].fd = pidfd;
        watch[0].events = POLLIN;
        watch[1].fd = signal_fd;
        watch[1].events = POLLIN;
        for (;;) {
            int ready;
            watch[0].revents = watch[1].revents = 0;
            ready = poll(watch, 2, RCPT_SIZE_INTERVAL_MS);
            if (ready < 0 && errno != EINTR)
                break; /* cannot watch: wait for the command below */
            if (watch[0].revents)
                break;
            if (pidfd < 0 && waitpid(pid, &raw, WNOHANG) == pid) {
                reaped = 1; /* no pidfd (an old kernel): looked for every 250 ms */
                break;
            }
            if (watch[1].revents) {
                while (read(signal_fd, &info, sizeof info) == (ssize_t)sizeof info)
                    interrupted = 1;
            }
            if (interrupted) {
                rcpt_stop(unit, pid, pidfd);
                /* before the command is reaped: its PID, the group's ID, is not reused yet */
                rcpt_end_tree(unit, pid, 1);
                while (waitpid(pid, &raw, 0) < 0 && errno == EINTR)
                    ;
                rcpt_reap_children();
                rcpt_update(unit, RCPT_FAILED, "\\"Killed\\"", rcpt_size(out_fd));
                return 1;
            }
            rcpt_reap_orphans(pid);
            current = rcpt_size(out_fd);
            if (current != size) {
                size = current;
                rcpt_update(unit, -1, NULL, size);
            }
        }
        /* a stop that crossed the command's own exit still ends the tree */
        if (read(signal_fd, &info, sizeof info) == (ssize_t)sizeof info)
            rcpt_end_tree(unit, pid, !reaped);
        while (!reaped && waitpid(pid, &raw, 0) < 0 && errno == EINTR)
            ;
        rcpt_reap_children();
        if (WIFSIGNALED(raw)) {
            int number = WTERMSIG(raw);
            state = RCPT_FAILED;
            if (number > 0 && number < 32)
                snprintf(detail, sizeof detail, "\\"signal: %s%s\\"", rcpt_signal_names[number],
                         WCOREDUMP(raw) ? " (core dumped)" : "");
            else
                snprintf(detail, sizeof detail, "\\"signal: signal %d%s\\"", number,
                         WCOREDUMP(raw) ? " (core dumped)" : "");
            code = 128 + number;
        } else {
            code = WEXITSTATUS(raw);
            state = code == 0 ? RCPT_SUCCEEDED : RCPT_FAILED;
            snprintf(detail, sizeof detail, "\\"exit status %d\\"", code);
        }
        rcpt_update(unit, state, detail, rcpt_size(out_fd));
        return code;
    }

    /* In the forked child: detach, take the runner's name, tell the server (by closing
       named_fd), drop the server's descriptors, supervise. Never returns. */
    static void rcpt_child(const rcpt_unit *unit, const char *comm, int named_fd,
                           const int *close_fds, int close_count, const char *path,
                           char *const argv[], int in_fd, int out_fd,
                           const char *spawn_error) {
        int fd, i, null_fd;
        sigset_t stop;
        setsid();
        fd = open("/proc/self/comm", O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            ssize_t ignored = write(fd, comm, strlen(comm));
            (void)ignored;
            close(fd);
        }
        /* A SIGINT/SIGTERM sent once the server knows our PID must wait for the signalfd:
           block them, then give them their default action (the server ignores SIGINT,
           and an ignored signal is dropped even when blocked). */
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigprocmask(SIG_BLOCK, &stop, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        close(named_fd);
        for (i = 0; i < close_count; i++)
            close(close_fds[i]);
        null_fd = open("/dev/null", O_RDONLY);
        if (null_fd >= 0 && null_fd != 0) {
            dup2(null_fd, 0);
            close(null_fd);
        }
        _exit(rcpt_supervise(unit, path, argv, in_fd, out_fd, spawn_error));
    }
    """
    ctypedef struct rcpt_unit:
        const char *status_path
        const char *lock_path
        int log_level

    void rcpt_child(const rcpt_unit *unit, const char *comm, int named_fd,
                    const int *close_fds, int close_count, const char *path,
                    char *const argv[], int in_fd, int out_fd,
                    const char *spawn_error) nogil

cdef extern from "unistd.h":
    int fork() nogil

_LEVELS = {"error": 0, "warning": 1, "info": 2, "debug": 3}


def fork_runner(
    bytes comm,
    bytes status_path,
    bytes lock_path,
    bytes path,
    list argv,
    int in_fd,
    int out_fd,
    int named_fd,
    tuple close_fds,
    bytes spawn_error,
    str log_level,
):
    """Fork a runner child that runs the command as :mod:`_runner` would; returns its PID.

    ``argv`` is a list of bytes; ``spawn_error`` is the start of the JSON string that
    becomes the Detail when the command cannot be started (``"fork/exec <path>: ``).
    The caller closes its copies of ``in_fd``, ``out_fd`` and ``named_fd`` afterwards.
    """
    cdef rcpt_unit unit
    cdef Py_ssize_t count = len(argv)
    cdef Py_ssize_t closing = len(close_fds)
    cdef Py_ssize_t index
    cdef char **c_argv = <char **>malloc((count + 1) * sizeof(char *))
    cdef int *c_close = <int *>malloc((closing + 1) * sizeof(int))
    cdef int pid
    if c_argv == NULL or c_close == NULL:
        free(c_argv)
        free(c_close)
        raise MemoryError()
    for index in range(count):
        c_argv[index] = <char *>(<bytes>argv[index])
    c_argv[count] = NULL
    for index in range(closing):
        c_close[index] = <int>close_fds[index]
    unit.status_path = status_path
    unit.lock_path = lock_path
    unit.log_level = _LEVELS.get(log_level, 2)
    cdef const char *c_comm = comm
    cdef const char *c_path = path
    cdef const char *c_error = spawn_error
    pid = fork()
    if pid == 0:
        rcpt_child(&unit, c_comm, named_fd, c_close, <int>closing, c_path, c_argv,
                   in_fd, out_fd, c_error)
    free(c_argv)
    free(c_close)
    if pid < 0:
        raise OSError(errno, os.strerror(errno))
    return pid
