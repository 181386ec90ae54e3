/* Compiled speed-up for stage 1's hottest loop: numeric feature dicts -> bin counts.
 *
 * Pure Python/NumPy does the same in driftline.detectors.fold (the reference
 * implementation, used when this module is not built): pull one column per feature out of the
 * events' feature dicts, convert it to float64, searchsorted it into the reference bins,
 * bincount. That builds 2 lists and 3 arrays per feature per batch; this loop reads each value
 * once and counts it in place.
 *
 * fold_numeric(dicts, names, edges, counts) -> list[tuple[int, int]] | None
 *
 *   dicts   list of dict (an event's features)
 *   names   tuple of str (the numeric features to count)
 *   edges   tuple of float64 buffers, sorted (the bins of each name)
 *   counts  tuple of writable int64 buffers, len(edges[i]) + 1 each
 *
 * For each name, value = dict.get(name): None, absent or NaN is missing; bool or str is a type
 * error (and missing); int or float lands in counts[i][k], k = the number of edges <= value
 * (numpy.searchsorted side="right"). Returns (missing, type errors) per name. Returns None,
 * having changed nothing, when a value of another type appears (numpy scalars, containers),
 * or an int does not convert to a float: the caller then takes the general path, which knows
 * those. Counting happens in a scratch area that is added to ``counts`` only at the end.
 *
 * fold_numeric_multivariate(dicts, names, edges, counts, index, means, scales, projector,
 *                           error_edges, error_counts, errors, cap)
 *     -> tuple[list[tuple[int, int]], int] | None
 *
 * fold_numeric, and in the same walk of each dict the event's PCA reconstruction error
 * (driftline.detectors.multivariate, whose NumPy path is the reference): for the d features
 * names[index[m]], x = the value (the reference mean when missing or no number, counted as
 * imputed), z[m] = (x - means[m]) / scales[m], residual = z @ projector (projector d x d,
 * row-major, summed over m in ascending order starting from 0.0), error = sqrt of the sum of
 * the squared residuals in ascending order, NaN or above ``cap`` -> cap. These are the NumPy
 * path's float64 operations in its order, one rounding each (the build turns off fused
 * multiply-add contraction), so every error is the same bits. The error lands in
 * error_counts[upper_bound(error_edges, error)] and is written to errors[row] (len(dicts)
 * entries; unspecified when None is returned). Returns (the tallies, values imputed).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The reconstruction error must round exactly as NumPy's float64 operations do: no wider
 * intermediates (x87), and no fused multiply-add (setup.py passes -ffp-contract=off). Where
 * that cannot hold, the extension is not built and the NumPy paths run. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD != 0
#error "float64 expressions must be evaluated in float64 (FLT_EVAL_METHOD == 0)"
#endif

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
 * name (borrowed) when ordered_values found them, else NULL (looked up here). ``xs``: when
 * not NULL, receives each name's value as a float64, NaN when missing or no number. */
static int fold_row(PyObject *d, PyObject *names, Column *cols, Py_ssize_t k, int64_t *bins,
                    int64_t *tallies, PyObject **values, double *xs) {
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
        if (xs != NULL) xs[i] = x;
        bins += nedges + 1;
    }
    return 0;
}

/* The multivariate part of fold_numeric_multivariate: its buffers and per-batch scratch. */
typedef struct {
    Py_buffer views[7]; /* index, means, scales, projector, error_edges, error_counts, errors */
    int held;           /* views[0 .. held) are held */
    Py_ssize_t d;
    double cap;
    const int64_t *index;
    const double *means, *scales, *projector, *error_edges;
    Py_ssize_t n_error_edges;
    int64_t *error_counts;
    double *errors;
    double *xs, *z, *residual; /* scratch: k values, d standardised, d residuals */
    int64_t *error_bins;       /* scratch: n_error_edges + 1 */
    int64_t imputed;
} Multi;

static void release_multi(Multi *mv) {
    for (int i = 0; i < mv->held; i++) PyBuffer_Release(&mv->views[i]);
    PyMem_Free(mv->xs);
    PyMem_Free(mv->error_bins);
}

/* Take the multivariate buffers, check their formats and lengths (k: the number of names,
 * rows: of dicts); 0, or -1 with an exception set (what was taken is released by the caller). */
static int take_multi(Multi *mv, PyObject *const *objs, Py_ssize_t k, Py_ssize_t rows) {
    static const char *what[7] = {"index",     "means",        "scales", "projector",
                                  "error_edges", "error_counts", "errors"};
    static const char *want[7] = {"q", "d", "d", "d", "d", "q", "d"};
    for (int i = 0; i < 7; i++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (i >= 5 ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(objs[i], &mv->views[i], flags) < 0) return -1;
        mv->held = i + 1;
        const char *f = mv->views[i].format ? mv->views[i].format : "B";
        if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
        int ok = mv->views[i].itemsize == 8 && mv->views[i].ndim == 1 &&
                 (strcmp(f, want[i]) == 0 || (want[i][0] == 'q' && strcmp(f, "l") == 0));
        if (!ok) {
            PyErr_Format(PyExc_TypeError, "%s must be a 1-D %s buffer, got format %s", what[i],
                         want[i][0] == 'd' ? "float64" : "int64", f);
            return -1;
        }
    }
    Py_ssize_t d = mv->views[0].shape[0];
    mv->d = d;
    if (d == 0 || mv->views[1].shape[0] != d || mv->views[2].shape[0] != d) {
        PyErr_SetString(PyExc_ValueError,
                        "index, means and scales must have the same length, at least 1");
        return -1;
    }
    if (mv->views[3].shape[0] != d * d) {
        PyErr_Format(PyExc_ValueError, "projector must have len(index) ** 2 = %zd entries",
                     d * d);
        return -1;
    }
    if (mv->views[5].shape[0] != mv->views[4].shape[0] + 1) {
        PyErr_SetString(PyExc_ValueError, "error_counts must have len(error_edges) + 1 entries");
        return -1;
    }
    if (mv->views[6].shape[0] != rows) {
        PyErr_SetString(PyExc_ValueError, "errors must have len(dicts) entries");
        return -1;
    }
    mv->index = (const int64_t *)mv->views[0].buf;
    for (Py_ssize_t m = 0; m < d; m++) {
        if (mv->index[m] < 0 || mv->index[m] >= k) {
            PyErr_Format(PyExc_ValueError, "index[%zd] must be a position in names, got %lld",
                         m, (long long)mv->index[m]);
            return -1;
        }
    }
    mv->means = (const double *)mv->views[1].buf;
    mv->scales = (const double *)mv->views[2].buf;
    mv->projector = (const double *)mv->views[3].buf;
    mv->error_edges = (const double *)mv->views[4].buf;
    mv->n_error_edges = mv->views[4].shape[0];
    mv->error_counts = (int64_t *)mv->views[5].buf;
    mv->errors = (double *)mv->views[6].buf;
    mv->xs = PyMem_Calloc((size_t)(k + 2 * d), sizeof(double));
    mv->error_bins = PyMem_Calloc((size_t)(mv->n_error_edges + 1), sizeof(int64_t));
    if (mv->xs == NULL || mv->error_bins == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    mv->z = mv->xs + k;
    mv->residual = mv->z + d;
    return 0;
}

/* One row's reconstruction error from its values ``mv->xs`` (by name index, NaN: missing),
 * counted into the scratch error bins. Each line is the NumPy path's expression
 * (multivariate.reconstruction_errors), evaluated in its order. */
static double row_error(Multi *mv) {
    const Py_ssize_t d = mv->d;
    double *z = mv->z, *residual = mv->residual;
    for (Py_ssize_t m = 0; m < d; m++) {
        double x = mv->xs[mv->index[m]];
        if (isnan(x)) {
            x = mv->means[m];
            mv->imputed++;
        }
        z[m] = (x - mv->means[m]) / mv->scales[m];
    }
    for (Py_ssize_t i = 0; i < d; i++) residual[i] = 0.0;
    for (Py_ssize_t j = 0; j < d; j++) {
        const double zj = z[j];
        const double *row = mv->projector + j * d;
        for (Py_ssize_t i = 0; i < d; i++) residual[i] += zj * row[i];
    }
    double total = 0.0;
    for (Py_ssize_t i = 0; i < d; i++) total += residual[i] * residual[i];
    double error = sqrt(total);
    if (isnan(error) || error > mv->cap) error = mv->cap;
    mv->error_bins[upper_bound(mv->error_edges, mv->n_error_edges, error)]++;
    return error;
}

/* fold_numeric's work, with the multivariate part when ``mv`` is not NULL: the tallies list,
 * None when declined, NULL with an exception set. */
static PyObject *fold(PyObject *dicts, PyObject *names, PyObject *edges, PyObject *counts,
                      PyObject *const *multi_args, double cap, int64_t *imputed) {
    Py_ssize_t k = PyTuple_GET_SIZE(names);
    if (PyTuple_GET_SIZE(edges) != k || PyTuple_GET_SIZE(counts) != k) {
        PyErr_SetString(PyExc_ValueError, "names, edges and counts must have the same length");
        return NULL;
    }
    Multi multi;
    memset(&multi, 0, sizeof(multi));
    multi.cap = cap;
    Multi *mv = multi_args ? &multi : NULL;
    Column *cols = PyMem_Calloc(k ? k : 1, sizeof(Column));
    if (cols == NULL) return PyErr_NoMemory();
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < k; i++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, i))) {
            PyErr_Format(PyExc_TypeError, "names[%zd] must be a str", i);
            release(cols, k);
            return NULL;
        }
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(edges, i), &cols[i].edges,
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            release(cols, k);
            return NULL;
        }
        cols[i].have_edges = 1;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(counts, i), &cols[i].counts,
                               PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
            release(cols, k);
            return NULL;
        }
        cols[i].have_counts = 1;
        if (check_format(&cols[i].edges, "d", "edges", i) < 0 ||
            check_format(&cols[i].counts, "q", "counts", i) < 0) {
            release(cols, k);
            return NULL;
        }
        if (cols[i].counts.shape[0] != cols[i].edges.shape[0] + 1) {
            PyErr_Format(PyExc_ValueError, "counts[%zd] must have len(edges[%zd]) + 1 entries",
                         i, i);
            release(cols, k);
            return NULL;
        }
        total += cols[i].counts.shape[0];
    }
    Py_ssize_t rows = PyList_GET_SIZE(dicts);
    if (mv != NULL && take_multi(mv, multi_args, k, rows) < 0) {
        release_multi(mv);
        release(cols, k);
        return NULL;
    }
    /* scratch: the bins of every column, then (missing, errors) per column */
    int64_t *scratch = PyMem_Calloc((size_t)(total + 2 * k + 1), sizeof(int64_t));
    if (scratch == NULL) {
        if (mv != NULL) release_multi(mv);
        release(cols, k);
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
        if (mv != NULL) release_multi(mv);
        release(cols, k);
        return PyErr_NoMemory();
    }
    int names_exact = 1, learnt = 0;
    for (Py_ssize_t i = 0; i < k; i++)
        names_exact &= PyUnicode_CheckExact(PyTuple_GET_ITEM(names, i));
    int unsupported = 0;
    /* The list's length is read again each row and the row held while it is read: a key's
     * __eq__ (only keys that are not str can have one) may change the list under us. */
    Py_ssize_t r = 0;
    for (; r < PyList_GET_SIZE(dicts) && !unsupported; r++) {
        PyObject *d = PyList_GET_ITEM(dicts, r);
        Py_INCREF(d);
        int ordered = names_exact && ordered_values(d, names, k, order, &learnt, values);
        unsupported = fold_row(d, names, cols, k, scratch, tallies, ordered ? values : NULL,
                               mv ? mv->xs : NULL);
        Py_DECREF(d);
        if (!unsupported && mv != NULL) {
            if (r >= rows) unsupported = 1; /* the list grew: errors has no room */
            else mv->errors[r] = row_error(mv);
        }
    }
    /* a list that shrank leaves errors[r:] unset: the caller takes the general path */
    if (mv != NULL && r != rows) unsupported = 1;
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
        if (mv != NULL) {
            for (Py_ssize_t j = 0; j <= mv->n_error_edges; j++)
                mv->error_counts[j] += mv->error_bins[j];
            *imputed = mv->imputed;
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
    if (mv != NULL) release_multi(mv);
    release(cols, k);
    return result;
}

static PyObject *fold_numeric(PyObject *self, PyObject *args) {
    PyObject *dicts, *names, *edges, *counts;
    if (!PyArg_ParseTuple(args, "O!O!O!O!:fold_numeric", &PyList_Type, &dicts, &PyTuple_Type,
                          &names, &PyTuple_Type, &edges, &PyTuple_Type, &counts))
        return NULL;
    return fold(dicts, names, edges, counts, NULL, 0.0, NULL);
}

static PyObject *fold_numeric_multivariate(PyObject *self, PyObject *args) {
    PyObject *dicts, *names, *edges, *counts;
    PyObject *multi[7];
    double cap;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OOOOOOOd:fold_numeric_multivariate", &PyList_Type,
                          &dicts, &PyTuple_Type, &names, &PyTuple_Type, &edges, &PyTuple_Type,
                          &counts, &multi[0], &multi[1], &multi[2], &multi[3], &multi[4],
                          &multi[5], &multi[6], &cap))
        return NULL;
    int64_t imputed = 0;
    PyObject *tallies = fold(dicts, names, edges, counts, multi, cap, &imputed);
    if (tallies == NULL || tallies == Py_None) return tallies;
    return Py_BuildValue("(NL)", tallies, (long long)imputed);
}

static PyMethodDef methods[] = {
    {"fold_numeric", fold_numeric, METH_VARARGS,
     "fold_numeric(dicts, names, edges, counts) -> list[tuple[int, int]] | None\n\n"
     "Count each name's numeric values of the feature dicts into its bins; see the module."},
    {"fold_numeric_multivariate", fold_numeric_multivariate, METH_VARARGS,
     "fold_numeric_multivariate(dicts, names, edges, counts, index, means, scales, projector,\n"
     "                          error_edges, error_counts, errors, cap)\n"
     "    -> tuple[list[tuple[int, int]], int] | None\n\n"
     "fold_numeric, and each event's PCA reconstruction error counted into its bins in the\n"
     "same walk; see the module."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "driftline.detectors._fold",
    "Compiled numeric folding for stage 1 (see driftline.detectors.fold).", -1, methods,
};

PyMODINIT_FUNC PyInit__fold(void) { return PyModule_Create(&module); }
