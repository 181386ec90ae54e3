/* Compiled speed-up for stage 1's hottest loop: numeric feature dicts -> bin counts.
 *
 * Pure Python/NumPy does the same in driftline.detectors.fold (the reference
 * implementation, used when this module is not built): pull one column per feature out of the
 * events' feature dicts, convert it to float64, searchsorted it into the reference bins,
 * bincount. That builds 2 lists and 3 arrays per feature per batch; this loop reads each value
 * once and counts it in place.
 *
 * fold_numeric(dicts, names, edges, counts[, matrix]) -> list[tuple[int, int]] | None
 *
 *   dicts   list of dict (an event's features)
 *   names   tuple of str (the numeric features to count)
 *   edges   tuple of float64 buffers, sorted (the bins of each name)
 *   counts  tuple of writable int64 buffers, len(edges[i]) + 1 each
 *   matrix  None, or a writable C-contiguous float64 buffer of len(dicts) x len(names):
 *           row r, column i receives dict r's value of names[i] as a float, NaN where it
 *           is missing or no number (what the multivariate part folds: one pass for both)
 *
 * For each name, value = dict.get(name): None, absent or NaN is missing; bool or str is a type
 * error (and missing); int or float lands in counts[i][k], k = the number of edges <= value
 * (numpy.searchsorted side="right"). Returns (missing, type errors) per name. Returns None,
 * having changed nothing, when a value of another type appears (numpy scalars, containers),
 * or an int does not convert to a float: the caller then takes the general path, which knows
 * those. Counting happens in a scratch area that is added to ``counts`` only at the end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    Py_buffer edges;
    Py_buffer counts;
    int have_edges;
    int have_counts;
} Column;

static void release(Column *cols, Py_ssize_t k) {
    for (Py_ssize_t i = 0; i < k; i++) {
        if (cols[i].have_edges) PyBuffer_Release(&cols[i].edges);
        if (cols[i].have_counts) PyBuffer_Release(&cols[i].counts);
    }
    PyMem_Free(cols);
}

/* release() and the optional matrix buffer */
#define RELEASE_ALL(cols, k)                              \
    do {                                                  \
        release(cols, k);                                 \
        if (have_matrix) PyBuffer_Release(&matrix);       \
    } while (0)

static int check_format(Py_buffer *view, const char *want, const char *what, Py_ssize_t i) {
    const char *f = view->format ? view->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    if (view->itemsize != 8 || view->ndim != 1 || strcmp(f, want) != 0) {
        /* 'l' and 'q' are both int64 on the platforms this builds on */
        if (!(strcmp(want, "q") == 0 && strcmp(f, "l") == 0 && view->itemsize == 8 &&
              view->ndim == 1)) {
            PyErr_Format(PyExc_TypeError, "%s[%zd] must be a 1-D %s buffer, got format %s", what,
                         i, strcmp(want, "d") == 0 ? "float64" : "int64", f);
            return -1;
        }
    }
    return 0;
}

/* The number of edges <= v (searchsorted side="right"), v not NaN. Branch-free: the loop
 * runs log2(n) times whatever v is and the comparison becomes a conditional move; a branchy
 * binary search mispredicts about half its steps on live data. The answer is always
 * base + (edges <= v among edges[base, base + n)): when the last edge of the first half is
 * <= v the whole half is, else no edge from it on is. */
static inline Py_ssize_t upper_bound(const double *edges, Py_ssize_t n, double v) {
    if (n == 0) return 0;
    Py_ssize_t base = 0;
    while (n > 1) {
        Py_ssize_t half = n >> 1;
        base = edges[base + half - 1] <= v ? base + half : base;
        n -= half;
    }
    return base + (edges[base] <= v);
}

/* Exact str equality without running Python code (both must be exact str). */
static inline int same_str(PyObject *a, PyObject *b) {
    if (a == b) return 1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(a);
    return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b) &&
           memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
}

/* The usual row holds exactly the names, in the same order as the rows before it (producers
 * serialise their features the same way every time). ``order[j]`` is the name index of the
 * row's j-th key, learnt from the first row that has exactly the names; a row that matches
 * it hands its values over in one walk of the dict, with no hashing and no probing (about
 * a third of the kernel's time on 20 features). Fills ``values`` (borrowed) by name index
 * and returns 1, or returns 0 having read nothing when the row is not of that shape. */
static int ordered_values(PyObject *d, PyObject *names, Py_ssize_t k, Py_ssize_t *order,
                          int *learnt, PyObject **values) {
    if (!PyDict_CheckExact(d) || PyDict_GET_SIZE(d) != k || k == 0) return 0;
    Py_ssize_t pos = 0, j = 0;
    PyObject *key, *value;
    if (*learnt) {
        while (PyDict_Next(d, &pos, &key, &value)) {
            if (!PyUnicode_CheckExact(key) ||
                !same_str(key, PyTuple_GET_ITEM(names, order[j])))
                return 0;
            values[order[j++]] = value;
        }
        return j == k;
    }
    /* learn the order from this row: each key must be a distinct name */
    for (Py_ssize_t i = 0; i < k; i++) values[i] = NULL;
    while (PyDict_Next(d, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) return 0;
        Py_ssize_t i = 0;
        while (i < k && !same_str(key, PyTuple_GET_ITEM(names, i))) i++;
        if (i == k || values[i] != NULL) return 0;
        order[j++] = i;
        values[i] = value;
    }
    if (j != k) return 0;
    *learnt = 1;
    return 1;
}

/* Count one row (a feature dict) into the scratch bins and tallies; 1 when it holds a value
 * the kernel does not know (or is no dict), 0 otherwise. ``values``: the row's value of each
 * name (borrowed) when ordered_values found them, else NULL (looked up here). */
static int fold_row(PyObject *d, PyObject *names, Column *cols, Py_ssize_t k, int64_t *bins,
                    int64_t *tallies, PyObject **values, double *row) {
    if (!PyDict_Check(d)) return 1;
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t nedges = cols[i].edges.shape[0];
        PyObject *v = values ? values[i] : PyDict_GetItemWithError(d, PyTuple_GET_ITEM(names, i));
        double x = NAN;
        if (v == NULL) {
            if (PyErr_Occurred()) {
                PyErr_Clear();
                return 1;
            }
            tallies[2 * i]++;
        } else if (v == Py_None) {
            tallies[2 * i]++;
        } else if (PyFloat_Check(v)) {
            x = PyFloat_AS_DOUBLE(v);
            if (isnan(x)) tallies[2 * i]++;
            else bins[upper_bound((const double *)cols[i].edges.buf, nedges, x)]++;
        } else if (PyBool_Check(v) || PyUnicode_Check(v)) {
            tallies[2 * i]++;
            tallies[2 * i + 1]++;
        } else if (PyLong_Check(v)) {
            x = PyLong_AsDouble(v);
            if (x == -1.0 && PyErr_Occurred()) {
                PyErr_Clear();
                return 1;
            }
            bins[upper_bound((const double *)cols[i].edges.buf, nedges, x)]++;
        } else {
            return 1;
        }
        if (row != NULL) row[i] = x;
        bins += nedges + 1;
    }
    return 0;
}

static PyObject *fold_numeric(PyObject *self, PyObject *args) {
    PyObject *dicts, *names, *edges, *counts, *matrix_obj = Py_None;
    if (!PyArg_ParseTuple(args, "O!O!O!O!|O:fold_numeric", &PyList_Type, &dicts, &PyTuple_Type,
                          &names, &PyTuple_Type, &edges, &PyTuple_Type, &counts, &matrix_obj))
        return NULL;
    Py_ssize_t k = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(edges) != k || PyTuple_GET_SIZE(counts) != k) {
        PyErr_SetString(PyExc_ValueError, "names, edges and counts must have the same length");
        return NULL;
    }
    Py_buffer matrix;
    int have_matrix = 0;
    if (matrix_obj != Py_None) {
        if (PyObject_GetBuffer(matrix_obj, &matrix,
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
            return NULL;
        have_matrix = 1;
        const char *f = matrix.format ? matrix.format : "B";
        if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
        if (matrix.itemsize != 8 || strcmp(f, "d") != 0 ||
            matrix.len != (Py_ssize_t)sizeof(double) * PyList_GET_SIZE(dicts) * k) {
            PyBuffer_Release(&matrix);
            PyErr_SetString(PyExc_ValueError,
                            "matrix must be a float64 buffer of len(dicts) x len(names)");
            return NULL;
        }
    }
    Column *cols = PyMem_Calloc(k ? k : 1, sizeof(Column));
    if (cols == NULL) {
        if (have_matrix) PyBuffer_Release(&matrix);
        return PyErr_NoMemory();
    }
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            PyErr_Format(PyExc_TypeError, "names[%zd] must be a str", i);
            RELEASE_ALL(cols, k);
            return NULL;
        }
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(edges, i), &cols[i].edges,
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            RELEASE_ALL(cols, k);
            return NULL;
        }
        cols[i].have_edges = 1;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(counts, i), &cols[i].counts,
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
            RELEASE_ALL(cols, k);
            return NULL;
        }
        cols[i].have_counts = 1;
        if (check_format(&cols[i].edges, "d", "edges", i) < 0 ||
            check_format(&cols[i].counts, "q", "counts", i) < 0) {
            RELEASE_ALL(cols, k);
            return NULL;
        }
        if (cols[i].counts.shape[0] != cols[i].edges.shape[0] + 1) {
            PyErr_Format(PyExc_ValueError, "counts[%zd] must have len(edges[%zd]) + 1 entries",
                         i, i);
            RELEASE_ALL(cols, k);
            return NULL;
        }
        total += cols[i].counts.shape[0];
    }
    /* scratch: the bins of every column, then (missing, errors) per column */
    int64_t *scratch = PyMem_Calloc((size_t)(total + 2 * k + 1), sizeof(int64_t));
    if (scratch == NULL) {
        RELEASE_ALL(cols, k);
        return PyErr_NoMemory();
    }
    int64_t *tallies = scratch + total;
    /* the ordered fast path's state: name index per key position, values by name index */
    Py_ssize_t *order = PyMem_Calloc(k ? (size_t)k : 1, sizeof(Py_ssize_t));
    PyObject **values = PyMem_Calloc(k ? (size_t)k : 1, sizeof(PyObject *));
    if (order == NULL || values == NULL) {
        PyMem_Free(order);
        PyMem_Free(values);
        PyMem_Free(scratch);
        RELEASE_ALL(cols, k);
        return PyErr_NoMemory();
    }
    int names_exact = 1, learnt = 0;
    for (Py_ssize_t i = 0; i < k; i++)
        names_exact &= PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i));
    int unsupported = 0;
    /* The list's length is read again each row and the row held while it is read: a key's
     * __eq__ (only keys that are not str can have one) may change the list under us. */
    for (Py_ssize_t r = 0; r < PyList_GET_SIZE(dicts) && !unsupported; r++) {
        PyObject *d = PyList_GET_ITEM(dicts, r);
        Py_INCREF(d);
        int ordered = names_exact && ordered_values(d, names, k, order, &learnt, values);
        double *row = have_matrix ? (double *)matrix.buf + r * k : NULL;
        unsupported =
            fold_row(d, names, cols, k, scratch, tallies, ordered ? values : NULL, row);
        Py_DECREF(d);
    }
    PyObject *result;
    if (unsupported) {
        result = Py_NewRef(Py_None);
    } else {
        int64_t *bins = scratch;
        for (Py_ssize_t i = 0; i < k; i++) {
            int64_t *out = (int64_t *)cols[i].counts.buf;
            Py_ssize_t m = cols[i].counts.shape[0];
            for (Py_ssize_t j = 0; j < m; j++) out[j] += bins[j];
            bins += m;
        }
        result = PyList_New(k);
        for (Py_ssize_t i = 0; result != NULL && i < k; i++) {
            PyObject *pair = Py_BuildValue("(LL)", (long long)tallies[2 * i],
                                           (long long)tallies[2 * i + 1]);
            if (pair == NULL) Py_CLEAR(result);
            else PyList_SET_ITEM(result, i, pair);
        }
    }
    PyMem_Free(order);
    PyMem_Free(values);
    PyMem_Free(scratch);
    RELEASE_ALL(cols, k);
    return result;
}

static PyMethodDef methods[] = {
    {"fold_numeric", fold_numeric, METH_VARARGS,
     "fold_numeric(dicts, names, edges, counts[, matrix]) -> list[tuple[int, int]] | None\n\n"
     "Count each name's numeric values of the feature dicts into its bins; see the module."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "driftline.detectors._fold",
    "Compiled numeric folding for stage 1 (see driftline.detectors.fold).", -1, methods,
};

PyMODINIT_FUNC PyInit__fold(void) { return PyModule_Create(&module); }
