/* The native half of unpack.py: plain tar headers parsed, many small files created.
 *
 * scan_headers(buffer, pos, entry_type) parses the plain ustar headers from
 * `pos` on (see its comment); unpack.py parses everything else.
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
#include <string.h>
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

/* A numeric header field as unpack.py's _number reads it, for the plain form only:
 * spaces, octal digits, then only NULs and spaces.  -1: not plain (Python decides). */
static long long plain_octal(const unsigned char *field, int size)
{
    int i = 0;
    long long value = 0;
    while (i < size && field[i] == ' ')
        i++;
    for (; i < size && field[i] >= '0' && field[i] <= '7'; i++) {
        if (value > (1LL << 58))
            return -1;
        value = value * 8 + (field[i] - '0');
    }
    for (; i < size; i++)
        if (field[i] != 0 && field[i] != ' ')
            return -1;
    return value;
}

static int set(PyObject *entry, const char *name, PyObject *value)
{
    if (value == NULL)
        return -1;
    int result = PyObject_SetAttrString(entry, name, value);
    Py_DECREF(value);
    return result;
}

/* scan_headers(buffer, pos, entry_type) -> [(entry, data_start, next_header), ...]
 *
 * Entries from consecutive headers at `pos` that are complete in `buffer` (header and
 * data) and plain: a valid checksum, octal numbers, a regular file, directory, symlink
 * or hard link, ustar or GNU magic.  It stops before anything else (the end marker, an
 * extension header, another type, a base-256 number, data past the buffer), which
 * unpack.py's _read_entries parses itself; the fields are the ones it would set. */
static PyObject *scan_headers(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos;
    PyObject *entry_type;
    if (!PyArg_ParseTuple(args, "y*nO", &view, &pos, &entry_type))
        return NULL;
    const unsigned char *data = view.buf;
    PyObject *result = PyList_New(0);
    while (result != NULL && pos >= 0 && view.len - pos >= 512) {
        const unsigned char *h = data + pos;
        long long stored = plain_octal(h + 148, 8);
        long long sum = 8 * ' ';
        for (int i = 0; i < 512; i++)
            if (i < 148 || i >= 156)
                sum += h[i];
        char type = (char)h[156];
        int regular = type == '0' || type == 0 || type == '7';
        if (stored != sum || !(regular || type == '5' || type == '2' || type == '1')
            || memcmp(h + 257, "ustar", 5) != 0)
            break;
        long long mode = plain_octal(h + 100, 8), uid = plain_octal(h + 108, 8);
        long long gid = plain_octal(h + 116, 8), size = plain_octal(h + 124, 12);
        long long mtime = plain_octal(h + 136, 12);
        if (mode < 0 || uid < 0 || gid < 0 || size < 0 || mtime < 0 || mtime > (1LL << 32))
            break;
        size_t name_length = strnlen((const char *)h, 100);
        size_t prefix_length = memcmp(h + 257, "ustar\0", 6) == 0 ? strnlen((const char *)h + 345, 155) : 0;
        if (regular && ((name_length && h[name_length - 1] == '/') || (prefix_length && !name_length)))
            type = '5', regular = 0;
        Py_ssize_t start = pos + 512;
        Py_ssize_t next = regular ? start + (Py_ssize_t)((size + 511) / 512 * 512) : start;
        if ((!regular && size) || next > view.len)
            break;
        PyObject *name;
        if (prefix_length) {
            name = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(prefix_length + 1 + name_length));
            if (name != NULL) {
                char *out = PyBytes_AS_STRING(name);
                memcpy(out, h + 345, prefix_length);
                out[prefix_length] = '/';
                memcpy(out + prefix_length + 1, h, name_length);
            }
        } else {
            name = PyBytes_FromStringAndSize((const char *)h, (Py_ssize_t)name_length);
        }
        PyObject *entry = name != NULL ? PyObject_CallNoArgs(entry_type) : NULL;
        PyObject *item = NULL;
        if (entry == NULL)
            Py_XDECREF(name);
        if (entry != NULL && set(entry, "name", name) == 0
            && set(entry, "type", PyBytes_FromStringAndSize(&type, 1)) == 0
            && set(entry, "mode", PyLong_FromLongLong(mode & 07777)) == 0
            && set(entry, "uid", PyLong_FromLongLong(uid)) == 0
            && set(entry, "gid", PyLong_FromLongLong(gid)) == 0
            && set(entry, "size", PyLong_FromLongLong(size)) == 0
            && set(entry, "mtime", PyLong_FromLongLong(mtime * 1000000000LL)) == 0
            && set(entry, "atime", PyLong_FromLongLong(mtime * 1000000000LL)) == 0
            && set(entry, "linkname",
                   PyBytes_FromStringAndSize((const char *)h + 157, (Py_ssize_t)strnlen((const char *)h + 157, 100))) == 0
            && PyObject_SetAttrString(entry, "xattrs", Py_None) == 0)
            item = Py_BuildValue("(Nnn)", entry, start, next);
        else
            Py_XDECREF(entry);
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(result);
            break;
        }
        Py_DECREF(item);
        pos = next;
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"scan_headers", scan_headers, METH_VARARGS,
     "scan_headers(buffer, pos, entry_type) -> [(entry, data_start, next_header)]; see the module source."},
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
