/*
 * The fast-mode pHash of pipeline.image.phash in C: Pillow's 32x32 Lanczos thumbnail of a
 * greyscale picture and the 8x8 low-frequency DCT hash of it, without the GIL.
 *
 * The download job hashes every image it stores (and dedup every benchmark image) with
 * phash(), which hands the greyscale pixels here: the same bits as the numpy path, in about half
 * the time. It reads only pixel buffers the caller decoded (never encoded, untrusted bytes); a
 * picture it does not handle (a side of 32 px or less, or a huge one) returns None so that the
 * caller computes the hash in numpy instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

/* AVX2 vectorises the thumbnail: a second copy of it for x86-64-v3 CPUs, picked at load time
 * (GCC's function multi-versioning). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SCAN_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define SCAN_CLONES
#endif

#define THUMB_PADDING 512   /* most taps per thumbnail output, and bytes readable past its input */
#define THUMB_MAX_SIDE 8192 /* longest side the thumbnail takes */

#define THUMB 32
#define PRECISION 22 /* fixed-point bits of the resampling weights, as Pillow's 8-bit resampler */

/* Weights of one resampling pass from `in_size` samples to THUMB, the way Pillow computes them
 * (Image.resize with LANCZOS: same centres, rounding of the bounds and normalisation): ksize
 * taps per output (returned; 0 if over ksize_cap), zeros past the `count` that matter. */
static int lanczos_weights(int in_size, int *first, int *count, int32_t *weights, int ksize_cap) {
    double scale = (double)(float)in_size / THUMB;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 3.0 * filterscale;
    /* Pillow's tap count, rounded up to a multiple of 8 so that the dot products vectorise */
    int ksize = ((int)ceil(support) * 2 + 1 + 7) & ~7;
    if (ksize > ksize_cap) return 0;
    double w[ksize];
    const double step = M_PI / filterscale; /* angle between consecutive taps of sin(pi a) */
    const double step_cos = cos(step), step_sin = sin(step);
    const double step3_cos = cos(step / 3), step3_sin = sin(step / 3);
    for (int xx = 0; xx < THUMB; xx++) {
        double center = (xx + 0.5) * scale;
        double total = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        /* lanczos3(a) = sinc(a) sinc(a / 3) at a = (x + xmin - center + 0.5) * ss, as Pillow; the
         * sines of consecutive taps come from an angle-addition recurrence, restarted from libm
         * every 16 taps, instead of two sin() calls per tap (most of this function's time). Their
         * difference to libm's values (a few ulp) is far below the 2^-22 steps the weights are
         * rounded to: the tests find Pillow's exact thumbnails. */
        double s1 = 0, c1 = 1, s3 = 0, c3 = 1;
        for (int x = 0; x < xmax; x++) {
            double a = (x + xmin - center + 0.5) * ss;
            if ((x & 15) == 0) {
                s1 = sin(a * M_PI);
                c1 = cos(a * M_PI);
                s3 = sin(a / 3 * M_PI);
                c3 = cos(a / 3 * M_PI);
            }
            double v = 0.0;
            if (-3.0 <= a && a < 3.0) {
                double third = a / 3;
                v = (a == 0.0 ? 1.0 : s1 / (a * M_PI)) * (third == 0.0 ? 1.0 : s3 / (third * M_PI));
            }
            w[x] = v;
            total += v;
            double next1 = s1 * step_cos + c1 * step_sin, next3 = s3 * step3_cos + c3 * step3_sin;
            c1 = c1 * step_cos - s1 * step_sin;
            c3 = c3 * step3_cos - s3 * step3_sin;
            s1 = next1;
            s3 = next3;
        }
        int32_t *k = weights + xx * ksize;
        for (int x = 0; x < xmax; x++) {
            double v = total != 0.0 ? w[x] / total : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION)) : (int32_t)(0.5 + v * (1 << PRECISION));
        }
        for (int x = xmax; x < ksize; x++) k[x] = 0; /* every output has ksize taps: vectorisable */
        first[xx] = xmin;
        count[xx] = xmax;
    }
    return ksize;
}

static inline uint8_t clip_fixed(int32_t v) {
    v >>= PRECISION;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static double dct_matrix[8 * THUMB]; /* set by configure(): pipeline.image.phash._DCT */
static int dct_ready;

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline int32_t dot(const uint8_t *src, const int32_t *k, int n) {
    int32_t acc = 1 << (PRECISION - 1);
    for (int i = 0; i < n; i++) acc += src[i] * k[i];
    return acc;
}

/* Pillow's Image.resize((32, 32), LANCZOS) of a greyscale image; 0 if it is too big for this.
 * `pixels` must be readable THUMB_PADDING bytes past its end (taps of zero weight read there). */
SCAN_CLONES static int lanczos_thumbnail(const uint8_t *pixels, int width, int height, uint8_t out[THUMB][THUMB]) {
    static __thread int32_t wx[THUMB * THUMB_PADDING], wy[THUMB * THUMB_PADDING];
    int fx[THUMB], nx[THUMB], fy[THUMB], ny[THUMB];
    if (width <= THUMB || height <= THUMB) return 0; /* Pillow skips or enlarges: not done here */
    int kx = lanczos_weights(width, fx, nx, wx, THUMB_PADDING);
    int ky = lanczos_weights(height, fy, ny, wy, THUMB_PADDING);
    if (!kx || !ky) return 0;
    /* Pillow 13 resizes vertically first when the height shrinks by more than twice as many
     * pixels as the width (python-pillow/Pillow#9549); the order changes the rounding. */
    int vertical_first = height - THUMB > 2 * (width - THUMB);
    int32_t acc[THUMB_MAX_SIDE];
    if (vertical_first) {
        int col_first = fx[0], cols = fx[THUMB - 1] + nx[THUMB - 1] - col_first;
        if (cols > THUMB_MAX_SIDE) return 0;
        uint8_t *temp = malloc((size_t)THUMB * cols + THUMB_PADDING);
        if (!temp) return 0;
        for (int yy = 0; yy < THUMB; yy++) {
            for (int x = 0; x < cols; x++) acc[x] = 1 << (PRECISION - 1);
            for (int t = 0; t < ny[yy]; t++) {
                const uint8_t *row = pixels + (size_t)(fy[yy] + t) * width + col_first;
                int32_t w = wy[yy * ky + t];
                for (int x = 0; x < cols; x++) acc[x] += row[x] * w;
            }
            for (int x = 0; x < cols; x++) temp[yy * cols + x] = clip_fixed(acc[x]);
        }
        for (int yy = 0; yy < THUMB; yy++)
            for (int xx = 0; xx < THUMB; xx++)
                out[yy][xx] = clip_fixed(dot(temp + yy * cols + fx[xx] - col_first, wx + xx * kx, kx));
        free(temp);
        return 1;
    }
    int row_first = fy[0], rows = fy[THUMB - 1] + ny[THUMB - 1] - row_first;
    uint8_t *temp = malloc((size_t)rows * THUMB);
    if (!temp) return 0;
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = pixels + (size_t)(y + row_first) * width;
        for (int xx = 0; xx < THUMB; xx++) temp[y * THUMB + xx] = clip_fixed(dot(in + fx[xx], wx + xx * kx, kx));
    }
    for (int yy = 0; yy < THUMB; yy++) {
        for (int xx = 0; xx < THUMB; xx++) acc[xx] = 1 << (PRECISION - 1);
        for (int t = 0; t < ny[yy]; t++) {
            const uint8_t *row = temp + (fy[yy] - row_first + t) * THUMB;
            int32_t w = wy[yy * ky + t];
            for (int xx = 0; xx < THUMB; xx++) acc[xx] += row[xx] * w;
        }
        for (int xx = 0; xx < THUMB; xx++) out[yy][xx] = clip_fixed(acc[xx]);
    }
    free(temp);
    return 1;
}

/* pHash of a greyscale image (phash.phash_bits' fast mode); *ok = 0 if it is too big. */
static uint64_t grey_phash(const uint8_t *pixels, int width, int height, int *ok) {
    uint8_t thumb[THUMB][THUMB];
    *ok = 0;
    if (!lanczos_thumbnail(pixels, width, height, thumb)) return 0;
    /* low = D @ thumb @ D.T for the 8 lowest frequencies, rounded to 6 decimals like np.round */
    double half[8][THUMB], low[64], sorted[64];
    for (int u = 0; u < 8; u++)
        for (int j = 0; j < THUMB; j++) {
            double acc = 0.0;
            for (int i = 0; i < THUMB; i++) acc += dct_matrix[u * THUMB + i] * thumb[i][j];
            half[u][j] = acc;
        }
    for (int u = 0; u < 8; u++)
        for (int v = 0; v < 8; v++) {
            double acc = 0.0;
            for (int j = 0; j < THUMB; j++) acc += half[u][j] * dct_matrix[v * THUMB + j];
            low[u * 8 + v] = rint(acc * 1e6) / 1e6;
        }
    memcpy(sorted, low, sizeof(low));
    qsort(sorted, 64, sizeof(double), compare_double);
    double median = (sorted[31] + sorted[32]) / 2;
    uint64_t hash = 0;
    for (int i = 0; i < 64; i++) hash = (hash << 1) | (low[i] > median);
    *ok = 1;
    return hash;
}

PyDoc_STRVAR(configure_doc, "configure(dct) -> None\n\nThe 8x32 float64 DCT-II matrix (row-major bytes) phash_grey() uses.");

static PyObject *configure(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    if (view.len != (Py_ssize_t)sizeof(dct_matrix)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the DCT matrix must be 8x32 float64");
        return NULL;
    }
    memcpy(dct_matrix, view.buf, sizeof(dct_matrix));
    dct_ready = 1;
    PyBuffer_Release(&view);
    Py_RETURN_NONE;
}

/* The (pixels, width, height) arguments of thumbnail() and phash_grey(), copied with the
 * THUMB_PADDING bytes lanczos_thumbnail() may read past the end; NULL with an exception set. */
static uint8_t *padded_grey_argument(PyObject *args, int *width, int *height) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*ii", &view, width, height)) return NULL;
    if (*width < 1 || *height < 1 || view.len != (Py_ssize_t)*width * *height) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "pixels must hold width * height bytes");
        return NULL;
    }
    uint8_t *padded = malloc((size_t)view.len + THUMB_PADDING);
    if (padded)
        memcpy(padded, view.buf, (size_t)view.len);
    else
        PyErr_NoMemory();
    PyBuffer_Release(&view);
    return padded;
}

PyDoc_STRVAR(thumbnail_doc,
             "thumbnail(pixels, width, height) -> bytes or None\n\n"
             "The 32x32 Lanczos thumbnail phash_grey() hashes (Pillow's resize, for testing).");

static PyObject *thumbnail(PyObject *self, PyObject *args) {
    (void)self;
    int width, height;
    uint8_t *padded = padded_grey_argument(args, &width, &height);
    if (!padded) return NULL;
    uint8_t out[THUMB][THUMB];
    int ok = lanczos_thumbnail(padded, width, height, out);
    free(padded);
    if (!ok) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)out, THUMB * THUMB);
}

PyDoc_STRVAR(phash_grey_doc,
             "phash_grey(pixels, width, height) -> int or None\n\n"
             "pipeline.image.phash's fast-mode pHash of a greyscale picture (its Lanczos thumbnail\n"
             "and DCT, in C); None for sizes it leaves to Python (a side of 32 px or less, or huge).");

static PyObject *phash_grey(PyObject *self, PyObject *args) {
    (void)self;
    if (!dct_ready) {
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    int width, height;
    uint8_t *padded = padded_grey_argument(args, &width, &height);
    if (!padded) return NULL;
    int ok;
    uint64_t hash;
    Py_BEGIN_ALLOW_THREADS
    hash = grey_phash(padded, width, height, &ok);
    Py_END_ALLOW_THREADS
    free(padded);
    if (!ok) Py_RETURN_NONE;
    return PyLong_FromUnsignedLongLong(hash);
}

static PyMethodDef methods[] = {
    {"phash_grey", phash_grey, METH_VARARGS, phash_grey_doc},
    {"thumbnail", thumbnail, METH_VARARGS, thumbnail_doc},
    {"configure", configure, METH_O, configure_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_phash", "The pHash thumbnail and DCT of pipeline.image.phash, in C.", -1, methods,
};

PyMODINIT_FUNC PyInit__phash(void) { return PyModule_Create(&module); }
