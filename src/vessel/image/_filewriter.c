/* The native half of unpack.py: plain tar headers parsed, many small files created.
 *
 * scan_headers(buffer, pos, entry_type) parses the plain ustar headers from
 * `pos` on (see its comment); unpack.py parses everything else.
 *
 * take_files(buffer, pos, applier, ...) queues the common-case regular files (a clean
 * name in a directory this layer made, in a target that started empty) for write_files
 * straight from their headers, making the same checks as unpack.py's _hand_over against
 * the applier's own sets (see its comment); unpack.py handles every other entry.
 *
 * write_files(ops) takes a list of tuples
 *     (dir_fd, name, data, mode, uid, gid, flags, atime_ns, mtime_ns)
 * and for each one, in order: openat(dir_fd, name, O_CREAT|O_EXCL|O_NOFOLLOW),
 * write all of data, fchown (flags & 1), fchmod (flags & 2), futimens, close.
 * The operations come from unpack.py or take_files, which decide the directory fd,
 * that name is one component, owners and modes by unpack.py's rules; write_files only
 * makes the system calls.  Returns None, or (index, errno) of the first
 * operation that failed (the ones before it are done, none after it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
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

/* One plain header as scan_headers and take_files read it. */
typedef struct {
    char type;                 /* the type byte; '5' for a regular file named like a directory */
    int regular;
    long long mode, uid, gid, size, mtime;
    const char *name, *prefix; /* the path is prefix "/" name when prefix_length */
    size_t name_length, prefix_length;
    Py_ssize_t data_start, next;
} plain_header;

/* The byte sum of a 512-byte block, eight bytes at a time: each 16-bit lane of `pairs` adds
 * up at most 64 * 2 * 255 < 65536, so none carries into the next. (A byte loop was 60% of
 * take_files' time.) */
static long long block_sum(const unsigned char *block)
{
    const uint64_t low_bytes = 0x00FF00FF00FF00FFULL;
    uint64_t pairs = 0;
    for (int i = 0; i < 512; i += 8) {
        uint64_t word;
        memcpy(&word, block + i, 8);
        pairs += (word & low_bytes) + ((word >> 8) & low_bytes);
    }
    long long sum = 0;
    for (int lane = 0; lane < 4; lane++)
        sum += (pairs >> (16 * lane)) & 0xFFFF;
    return sum;
}

/* Parses the header at data[pos]: 1 if it is plain (a valid checksum, octal numbers, a
 * regular file, directory, symlink or hard link, ustar or GNU magic) and complete with its
 * data in the buffer; 0 for anything else (the end marker, an extension header, another
 * type, a base-256 number, data past the buffer), which Python parses itself. */
static int parse_plain(const unsigned char *data, Py_ssize_t length, Py_ssize_t pos, plain_header *out)
{
    if (pos < 0 || length - pos < 512)
        return 0;
    const unsigned char *h = data + pos;
    long long stored = plain_octal(h + 148, 8);
    long long sum = 8 * ' ' + block_sum(h);
    for (int i = 148; i < 156; i++)  /* the checksum field counts as spaces */
        sum -= h[i];
    out->type = (char)h[156];
    out->regular = out->type == '0' || out->type == 0 || out->type == '7';
    if (stored != sum || !(out->regular || out->type == '5' || out->type == '2' || out->type == '1')
        || memcmp(h + 257, "ustar", 5) != 0)
        return 0;
    out->mode = plain_octal(h + 100, 8);
    out->uid = plain_octal(h + 108, 8);
    out->gid = plain_octal(h + 116, 8);
    out->size = plain_octal(h + 124, 12);
    out->mtime = plain_octal(h + 136, 12);
    if (out->mode < 0 || out->uid < 0 || out->gid < 0 || out->size < 0 || out->mtime < 0
        || out->mtime > (1LL << 32))
        return 0;
    out->mode &= 07777;
    out->name = (const char *)h;
    out->name_length = strnlen(out->name, 100);
    out->prefix = (const char *)h + 345;
    out->prefix_length = memcmp(h + 257, "ustar\0", 6) == 0 ? strnlen(out->prefix, 155) : 0;
    if (out->regular && ((out->name_length && out->name[out->name_length - 1] == '/')
                         || (out->prefix_length && !out->name_length))) {
        out->type = '5';
        out->regular = 0;
    }
    out->data_start = pos + 512;
    out->next = out->data_start + (out->regular ? (Py_ssize_t)((out->size + 511) / 512 * 512) : 0);
    return (out->regular || out->size == 0) && out->next <= length;
}

/* The header's path as one bytes object. */
static PyObject *header_path(const plain_header *hd)
{
    if (!hd->prefix_length)
        return PyBytes_FromStringAndSize(hd->name, (Py_ssize_t)hd->name_length);
    PyObject *path = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(hd->prefix_length + 1 + hd->name_length));
    if (path != NULL) {
        char *out = PyBytes_AS_STRING(path);
        memcpy(out, hd->prefix, hd->prefix_length);
        out[hd->prefix_length] = '/';
        memcpy(out + hd->prefix_length + 1, hd->name, hd->name_length);
    }
    return path;
}

/* scan_headers(buffer, pos, entry_type[, limit]) -> [(entry, data_start, next_header), ...]
 *
 * Entries (at most `limit`) from the consecutive plain headers at `pos` (see parse_plain);
 * it stops before anything else, which unpack.py's _read_entries parses itself; the
 * fields are the ones it would set. */
static PyObject *scan_headers(PyObject *module, PyObject *args)
{
    Py_buffer view;
    Py_ssize_t pos, limit = PY_SSIZE_T_MAX;
    PyObject *entry_type;
    if (!PyArg_ParseTuple(args, "y*nO|n", &view, &pos, &entry_type, &limit))
        return NULL;
    PyObject *result = PyList_New(0);
    plain_header hd;
    while (result != NULL && PyList_GET_SIZE(result) < limit && parse_plain(view.buf, view.len, pos, &hd)) {
        PyObject *name = header_path(&hd);
        PyObject *entry = name != NULL ? PyObject_CallNoArgs(entry_type) : NULL;
        PyObject *item = NULL;
        if (entry == NULL)
            Py_XDECREF(name);
        if (entry != NULL && set(entry, "name", name) == 0
            && set(entry, "type", PyBytes_FromStringAndSize(&hd.type, 1)) == 0
            && set(entry, "mode", PyLong_FromLongLong(hd.mode)) == 0
            && set(entry, "uid", PyLong_FromLongLong(hd.uid)) == 0
            && set(entry, "gid", PyLong_FromLongLong(hd.gid)) == 0
            && set(entry, "size", PyLong_FromLongLong(hd.size)) == 0
            && set(entry, "mtime", PyLong_FromLongLong(hd.mtime * 1000000000LL)) == 0
            && set(entry, "atime", PyLong_FromLongLong(hd.mtime * 1000000000LL)) == 0
            && set(entry, "linkname",
                   PyBytes_FromStringAndSize(hd.name + 157, (Py_ssize_t)strnlen(hd.name + 157, 100))) == 0
            && PyObject_SetAttrString(entry, "xattrs", Py_None) == 0)
            item = Py_BuildValue("(Nnn)", entry, hd.data_start, hd.next);
        else
            Py_XDECREF(entry);
        if (item == NULL || PyList_Append(result, item) < 0) {
            Py_XDECREF(item);
            Py_CLEAR(result);
            break;
        }
        Py_DECREF(item);
        pos = hd.next;
    }
    PyBuffer_Release(&view);
    return result;
}

/* Whether `path` is already clean in unpack.py's _clean sense: its components are not
 * empty, "." or "..", so it names itself (no leading or doubled "/"). */
static int clean_path(const char *path, Py_ssize_t length)
{
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i <= length; i++) {
        if (i < length && path[i] != '/')
            continue;
        Py_ssize_t part = i - start;
        if (part == 0 || (part == 1 && path[start] == '.')
            || (part == 2 && path[start] == '.' && path[start + 1] == '.'))
            return 0;
        start = i + 1;
    }
    return 1;
}

/* The applier's state that take_files reads and updates (attributes of unpack.py's _Applier). */
typedef struct {
    PyObject *real, *pending, *created, *dirs, *setgid_dirs;
    long root_fd, euid, egid, umask;
    int overlay, same_owner;
} applier_state;

static int read_applier(PyObject *applier, applier_state *st)
{
    PyObject *values[9] = {NULL};
    static const char *names[9] = {"real", "pending", "created", "dirs", "setgid_dirs",
                                   "root_fd", "euid", "egid", "umask"};
    int ok = 1;
    for (int i = 0; i < 9 && ok; i++)
        ok = (values[i] = PyObject_GetAttrString(applier, names[i])) != NULL;
    if (ok) {
        st->real = values[0], st->pending = values[1], st->created = values[2];
        st->dirs = values[3], st->setgid_dirs = values[4];
        st->root_fd = PyLong_AsLong(values[5]), st->euid = PyLong_AsLong(values[6]);
        st->egid = PyLong_AsLong(values[7]), st->umask = PyLong_AsLong(values[8]);
        PyObject *overlay = PyObject_GetAttrString(applier, "overlay");
        PyObject *same_owner = PyObject_GetAttrString(applier, "same_owner");
        st->overlay = overlay ? PyObject_IsTrue(overlay) : -1;
        st->same_owner = same_owner ? PyObject_IsTrue(same_owner) : -1;
        Py_XDECREF(overlay);
        Py_XDECREF(same_owner);
        ok = !PyErr_Occurred() && st->overlay >= 0 && st->same_owner >= 0;
    }
    for (int i = 5; i < 9; i++)
        Py_XDECREF(values[i]);
    if (!ok)
        for (int i = 0; i < 5; i++)
            Py_XDECREF(values[i]);
    return ok ? 0 : -1;
}

static void release_applier(applier_state *st)
{
    Py_DECREF(st->real);
    Py_DECREF(st->pending);
    Py_DECREF(st->created);
    Py_DECREF(st->dirs);
    Py_DECREF(st->setgid_dirs);
}

/* Hands one regular file over (see take_files): 1 done, 0 not the common case, -1 error. */
static int take_file(const applier_state *st, const plain_header *hd, PyObject *buffer,
                     PyObject *ops, PyObject *names, long long max_size)
{
    if (!hd->regular || hd->size > max_size)
        return 0;
    PyObject *path = header_path(hd);
    if (path == NULL)
        return -1;
    const char *text = PyBytes_AS_STRING(path);
    Py_ssize_t length = PyBytes_GET_SIZE(path);
    const char *slash = memrchr(text, '/', (size_t)length);
    Py_ssize_t base_at = slash ? slash - text + 1 : 0;
    PyObject *parent_key = NULL, *base = NULL, *parent = NULL, *data = NULL, *op = NULL;
    int result = 0, known;
    if (!clean_path(text, length) || strncmp(text + base_at, ".wh.", 4) == 0)
        goto done;
    result = -1;
    parent_key = PyBytes_FromStringAndSize(text, base_at ? base_at - 1 : 0);
    if (parent_key == NULL || (known = PySet_Contains(st->real, parent_key)) < 0)
        goto done;
    result = 0;
    if (!known || PySet_Contains(st->pending, path) != 0 || PySet_Contains(st->real, path) != 0)
        goto done;  /* not below a directory of this layer, or the path is queued or one of its dirs */
    if (base_at) {
        parent = PyDict_GetItemWithError(st->dirs, parent_key);  /* borrowed */
        if (parent == NULL)
            goto done;  /* its fd is not cached: Python opens it */
        Py_INCREF(parent);
    } else if ((parent = PyLong_FromLong(st->root_fd)) == NULL) {
        result = -1;
        goto done;
    }
    result = -1;
    int setgid = PySet_Contains(st->setgid_dirs, parent);
    if (setgid < 0)
        goto done;
    int flags = 0;
    if (st->same_owner && (hd->uid != st->euid || hd->gid != st->egid || setgid))
        flags |= CHOWN;
    if (setgid || (hd->mode & 07000) || (hd->mode & st->umask))
        flags |= CHMOD;
    base = PyBytes_FromStringAndSize(text + base_at, length - base_at);
    data = PySequence_GetSlice(buffer, hd->data_start, hd->data_start + (Py_ssize_t)hd->size);
    if (base == NULL || data == NULL)
        goto done;
    long long ns = hd->mtime * 1000000000LL;
    op = Py_BuildValue("(OOOLLLiLL)", parent, base, data, hd->mode, hd->uid, hd->gid, flags, ns, ns);
    if (op == NULL || PyList_Append(ops, op) < 0 || PyList_Append(names, path) < 0
        || PySet_Add(st->pending, path) < 0 || (!st->overlay && PySet_Add(st->created, path) < 0))
        goto done;
    result = 1;
done:
    if (result == 0 && PyErr_Occurred())
        result = -1;
    Py_XDECREF(op);
    Py_XDECREF(data);
    Py_XDECREF(base);
    Py_XDECREF(parent);
    Py_XDECREF(parent_key);
    Py_DECREF(path);
    return result;
}

/* take_files(buffer, pos, applier, ops, names, limit, max_size) -> (pos, files, bytes)
 *
 * The common case of unpack.py's _Applier._hand_over, without a Python call per file: from
 * `pos` on, each plain header (see parse_plain) of a regular file of at most `max_size`
 * bytes, with a name that is already clean and not a whiteout, whose parent is a directory
 * this layer made (in applier.real, its fd in applier.dirs or the root) and whose path is
 * neither queued (applier.pending) nor one of those directories, becomes a write_files
 * operation appended to `ops` (its path to `names`, applier.pending, and applier.created
 * when not overlay).  Every decision is the one _hand_over makes; the same sets and the
 * same fds.  It stops before the first other header, or when `ops` has `limit` items, and
 * returns where it stopped, how many files it took and their bytes. */
static PyObject *take_files(PyObject *module, PyObject *args)
{
    PyObject *buffer, *applier, *ops, *names;
    Py_ssize_t pos, limit;
    long long max_size;
    if (!PyArg_ParseTuple(args, "OnOO!O!nL", &buffer, &pos, &applier, &PyList_Type, &ops,
                          &PyList_Type, &names, &limit, &max_size))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *slices = PyMemoryView_FromObject(buffer);  /* file data: views, not copies */
    applier_state st;
    if (slices == NULL || read_applier(applier, &st) < 0) {
        Py_XDECREF(slices);
        PyBuffer_Release(&view);
        return NULL;
    }
    Py_ssize_t files = 0;
    long long bytes = 0;
    int taken = 1;
    plain_header hd;
    while (PyList_GET_SIZE(ops) < limit && parse_plain(view.buf, view.len, pos, &hd)
           && (taken = take_file(&st, &hd, slices, ops, names, max_size)) > 0) {
        files++;
        bytes += hd.size;
        pos = hd.next;
    }
    release_applier(&st);
    Py_DECREF(slices);
    PyBuffer_Release(&view);
    if (taken < 0)
        return NULL;
    return Py_BuildValue("(nnL)", pos, files, bytes);
}

static PyMethodDef methods[] = {
    {"scan_headers", scan_headers, METH_VARARGS,
     "scan_headers(buffer, pos, entry_type[, limit]) -> [(entry, data_start, next_header)]; see the module source."},
    {"take_files", take_files, METH_VARARGS,
     "take_files(buffer, pos, applier, ops, names, limit, max_size) -> (pos, files, bytes); see the module source."},
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
