/* Create many small regular files with the GIL released: the native half of unpack.py.
 *
 * write_files(ops) takes a list of tuples
 *     (dir_fd, name, data, mode, uid, gid, flags, atime_ns, mtime_ns)
 * and for each one, in order: openat(dir_fd, name, O_CREAT|O_EXCL|O_NOFOLLOW),
 * write all of data, fchown (flags & 1), fchmod (flags & 2), futimens, close.
 * Python decides everything (which directory fd, that name is one component,
 * owners, modes); this file only makes the system calls, so a layer's safety
 * rules stay in unpack.py.  Returns None, or (index, errno) of the first
 * operation that failed (the ones before it are done, none after it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHOWN 1
#define CHMOD 2

typedef struct {
    int dir_fd;
    const char *name;
    Py_buffer data;
    unsigned int mode;
    long uid, gid;
    int flags;
    struct timespec times[2];
} file_op;

static int write_all(int fd, const char *data, Py_ssize_t size)
{
    while (size > 0) {
        ssize_t done = write(fd, data, (size_t)size);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += done;
        size -= done;
    }
    return 0;
}

static int make_file(const file_op *op)
{
    int fd = openat(op->dir_fd, op->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    op->mode & 0777);
    if (fd < 0)
        return -1;
    if (write_all(fd, op->data.buf, op->data.len) < 0
        || ((op->flags & CHOWN) && fchown(fd, (uid_t)op->uid, (gid_t)op->gid) < 0)
        || ((op->flags & CHMOD) && fchmod(fd, op->mode & 07777) < 0)
        || futimens(fd, op->times) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return close(fd);
}

static void set_time(struct timespec *out, long long ns)
{
    out->tv_sec = ns / 1000000000LL;
    out->tv_nsec = ns % 1000000000LL;
    if (out->tv_nsec < 0) {
        out->tv_nsec += 1000000000LL;
        out->tv_sec -= 1;
    }
}

static PyObject *write_files(PyObject *module, PyObject *arg)
{
    PyObject *list = PySequence_Fast(arg, "write_files() takes a list of tuples");
    if (list == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(list);
    file_op *ops = PyMem_Calloc(count ? (size_t)count : 1, sizeof(file_op));
    if (ops == NULL) {
        Py_DECREF(list);
        return PyErr_NoMemory();
    }
    Py_ssize_t parsed = 0;
    PyObject *result = NULL;
    for (; parsed < count; parsed++) {
        file_op *op = &ops[parsed];
        long long atime, mtime;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(list, parsed), "iyy*IlliLL;write_files() operation",
                              &op->dir_fd, &op->name, &op->data, &op->mode, &op->uid, &op->gid,
                              &op->flags, &atime, &mtime))
            goto done;
        set_time(&op->times[0], atime);
        set_time(&op->times[1], mtime);
    }
    Py_ssize_t failed = -1;
    int error = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < count; i++) {
        if (make_file(&ops[i]) < 0) {
            failed = i;
            error = errno;
            break;
        }
    }
    Py_END_ALLOW_THREADS
    if (failed >= 0)
        result = Py_BuildValue("(ni)", failed, error);
    else
        result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t i = 0; i < parsed; i++)
        PyBuffer_Release(&ops[i].data);
    PyMem_Free(ops);
    Py_DECREF(list);
    return result;
}

static PyMethodDef methods[] = {
    {"write_files", write_files, METH_O,
     "write_files(ops) -> None or (index, errno): create regular files; see the module source."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "vessel.image._filewriter",
    "Creates regular files of a layer with the GIL released (unpack.py's native half).", -1, methods,
};

PyMODINIT_FUNC PyInit__filewriter(void)
{
    return PyModule_Create(&module);
}
