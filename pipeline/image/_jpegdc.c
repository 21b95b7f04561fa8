/*
 * The 1/8-scale luminance of a baseline JPEG from its DC coefficients alone.
 *
 * libjpeg(-turbo) at scale 1/8 turns every 8x8 block into one pixel, its DC coefficient, but it
 * still decodes each AC coefficient one Huffman symbol at a time. A perceptual hash of a 32x32
 * thumbnail needs none of their values, only where each block ends, so this decoder skips them
 * several symbols per table look-up (a table over the next MULTI_BITS bits of the stream holds
 * how many bits and coefficient positions the complete symbols in them take). The pixels are
 * those libjpeg-turbo gives for draft("L") at scale 1/8: (DC * Q0 + 4) >> 3, level-shifted and
 * range-limited the way jpeg_idct_1x1 does it. phash_dc() then makes Pillow's 32x32 Lanczos
 * thumbnail of them and pipeline.image.phash's DCT hash, all without the GIL.
 *
 * Anything this file does not handle (progressive, arithmetic or lossless coding, 12-bit
 * samples, RGB or CMYK colour, luma not at the highest sampling factor, DNL markers, corrupt or
 * truncated entropy data) returns None so that the caller decodes with Pillow instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>

#define LOOK_BITS 9    /* single-symbol look-up for the slow path */
#define DC_BITS 11     /* DC look-up: code and magnitude bits at once */
#ifndef MULTI_BITS
#define MULTI_BITS 12 /* AC look-up: several symbols and their magnitude bits at once */
#endif
#define MAX_COMPONENTS 4
#define CACHE_SIZE 8
/* BMI2's shifts by a register save instructions per Huffman symbol and AVX2 vectorises the
 * thumbnail: second copies of those two functions for x86-64-v3 CPUs, picked at load time
 * (GCC's function multi-versioning). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define SCAN_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define SCAN_CLONES
#endif

#define THUMB_PADDING 512   /* most taps per thumbnail output, and bytes readable past its input */
#define THUMB_MAX_SIDE 8192 /* longest side the thumbnail takes */
#define PADDING 4096 /* zero bytes after the scan data, more than one MCU can read */

typedef struct {
    int32_t maxcode[18];   /* largest code of each length, -1 when none; [17] is a sentinel */
    int32_t valoffset[17]; /* huffval index = code + valoffset[length] */
    uint8_t huffval[256];
    uint16_t look[1 << LOOK_BITS]; /* (length << 8) | symbol; 0 when the code is longer */
    /* DC only: code length | magnitude size << 4 when the code fits in DC_BITS; else 0 */
    uint16_t dcfast[1 << DC_BITS];
} HuffTable;

typedef struct {
    uint8_t key[1 + 16 + 256]; /* class (1 = AC), then the DHT counts and symbols */
    int key_length;
    HuffTable table;
    /* AC only: bits used | coefficient positions advanced << 5 (see build_multi) */
    uint16_t multi[1 << MULTI_BITS];
} CodeTables;

typedef struct {
    uint8_t counts[16];
    uint8_t symbols[256];
    int nsymbols;
} RawTable;

typedef struct {
    int id, h, v, tq;
    int width, height;        /* component size in samples */
    int blocks_w, blocks_h;   /* blocks inside the component */
} Component;

typedef struct {
    const uint8_t *p;
    const uint8_t *end; /* reading past this (into the zero padding) means truncated data */
    uint64_t buf;       /* left-aligned */
    int nbits;
} BitReader;

typedef struct {
    const uint8_t *data;
    size_t length;
    int width, height, ncomp, hmax, vmax;
    Component comp[MAX_COMPONENTS];
    int qdc[4]; /* DC entry of each quantisation table, 0 when undefined */
    int qdefined[4];
    CodeTables *dc[4], *ac[4]; /* private copies, built or taken from the cache */
    int restart_interval;
    int saw_jfif, saw_adobe, adobe_transform;
    int luma_done;
    int min_side;         /* files whose short side is smaller are not decoded */
    long long max_pixels; /* nor larger ones (0: no limit) */
    uint8_t *out; /* blocks_w * blocks_h of component 0 */
    uint8_t *scratch; /* destuffed scan data */
    int scratch_owned; /* 1: malloc'ed for this call, 0: the thread's reusable buffer */
} Decoder;

/* Per-thread buffers reused from call to call (the destuffed scan and the DC grid are as big
 * as the file): fresh ones cost page faults on every image. They are freed when the thread
 * ends; needs over KEEP_AT_MOST are served by a malloc of their own and not kept. */
typedef struct {
    void *data;
    size_t capacity;
} Reusable;

typedef struct {
    Reusable scratch, grid;
} ThreadBuffers;

#define KEEP_AT_MOST (16u << 20)

static pthread_key_t buffers_key;

static void free_buffers(void *p) {
    ThreadBuffers *b = p;
    free(b->scratch.data);
    free(b->grid.data);
    free(b);
}

static ThreadBuffers *thread_buffers(void) {
    ThreadBuffers *b = pthread_getspecific(buffers_key);
    if (!b) {
        b = calloc(1, sizeof(ThreadBuffers));
        if (b && pthread_setspecific(buffers_key, b)) {
            free(b);
            b = NULL;
        }
    }
    return b;
}

static Reusable *scratch_slot(void) {
    ThreadBuffers *b = thread_buffers();
    return b ? &b->scratch : NULL;
}

static Reusable *grid_slot(void) {
    ThreadBuffers *b = thread_buffers();
    return b ? &b->grid : NULL;
}

static void *reusable(Reusable *r, size_t n, int *owned) {
    *owned = 0;
    if (!r || n > KEEP_AT_MOST) {
        *owned = 1;
        return malloc(n);
    }
    if (n > r->capacity) {
        void *grown = realloc(r->data, n);
        if (!grown) return NULL;
        r->data = grown;
        r->capacity = n;
    }
    return r->data;
}

static CodeTables *cache[CACHE_SIZE];
static int cache_next;

static inline uint64_t load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return __builtin_bswap64(v);
}

static inline void refill(BitReader *br) {
    br->buf |= load_be64(br->p) >> br->nbits;
    int bytes = (63 - br->nbits) >> 3;
    br->p += bytes;
    br->nbits += bytes << 3;
}

static inline void consume(BitReader *br, int n) {
    br->buf <<= n;
    br->nbits -= n;
}

/* Canonical decoding tables as in libjpeg's jdhuff.c; 0 on an invalid table. */
static int build_table(const RawTable *raw, HuffTable *t) {
    int code = 0, k = 0;
    memset(t->look, 0, sizeof(t->look));
    memcpy(t->huffval, raw->symbols, (size_t)raw->nsymbols);
    for (int l = 1; l <= 16; l++) {
        int n = raw->counts[l - 1];
        if (n) {
            t->valoffset[l] = k - code;
            for (int i = 0; i < n; i++, k++, code++) {
                if (l <= LOOK_BITS) {
                    int shift = LOOK_BITS - l;
                    for (int j = 0; j < (1 << shift); j++)
                        t->look[(code << shift) | j] = (uint16_t)((l << 8) | raw->symbols[k]);
                }
            }
            t->maxcode[l] = code - 1;
        } else {
            t->valoffset[l] = 0;
            t->maxcode[l] = -1;
        }
        if (code > (1 << l)) return 0; /* more codes than the length allows */
        code <<= 1;
    }
    t->maxcode[17] = 0x7FFFFFFF;
    return 1;
}

static int decode_top(const HuffTable *t, uint64_t bits, int *length);

static void build_dcfast(HuffTable *t) {
    for (uint32_t w = 0; w < (1u << DC_BITS); w++) {
        int length;
        int size = decode_top(t, (uint64_t)w << (64 - DC_BITS), &length);
        uint16_t e = 0;
        /* Only the code has to lie inside the window: the magnitude is read from the bit buffer. */
        if (size >= 0 && size <= 11 && length <= DC_BITS) e = (uint16_t)(length | (size << 4));
        t->dcfast[w] = e;
    }
}

/* Decode one symbol from the top of `bits` (left-aligned); its length goes to *length. */
static inline int decode_top(const HuffTable *t, uint64_t bits, int *length) {
    uint16_t e = t->look[bits >> (64 - LOOK_BITS)];
    if (e) {
        *length = e >> 8;
        return e & 0xFF;
    }
    for (int l = LOOK_BITS + 1; l <= 16; l++) {
        int32_t code = (int32_t)(bits >> (64 - l));
        if (code <= t->maxcode[l]) {
            *length = l;
            return t->huffval[code + t->valoffset[l]];
        }
    }
    return -1;
}

static void build_multi(CodeTables *e) {
    for (uint32_t w = 0; w < (1u << MULTI_BITS); w++) {
        uint64_t bits = (uint64_t)w << (64 - MULTI_BITS);
        int used = 0, advance = 0, eob = 0;
        /* Codes must lie inside the window; the magnitude bits after them need not, since they
         * are skipped unread: an entry may take up to MULTI_BITS + 15 bits. */
        while (used < MULTI_BITS) {
            int length;
            int sym = decode_top(&e->table, bits << used, &length);
            if (sym < 0 || used + length > MULTI_BITS) break;
            int run = sym >> 4, size = sym & 15;
            if (size == 0 && run != 15) {
                used += length;
                eob = 1;
                break;
            }
            used += length + size;
            advance += size ? run + 1 : 16;
        }
        /* Slow-path entries advance by 255 and EOB ones by 128 more, so that the hot loop in
         * skip_ac() needs one comparison: k + advance < 64. */
        if (used == 0) advance = 255;
        else if (eob) advance += 128;
        if (advance > 255) advance = 255;
        e->multi[w] = (uint16_t)(used | (advance << 5));
    }
}

/* The decoding tables of `raw`, from the cache when an identical DHT was seen before (GIL held). */
static CodeTables *cached_tables(const RawTable *raw, int is_ac) {
    uint8_t key[1 + 16 + 256];
    int key_length = 1 + 16 + raw->nsymbols;
    key[0] = (uint8_t)is_ac;
    memcpy(key + 1, raw->counts, 16);
    memcpy(key + 1 + 16, raw->symbols, (size_t)raw->nsymbols);
    CodeTables *found = NULL;
    for (int i = 0; i < CACHE_SIZE; i++) {
        if (cache[i] && cache[i]->key_length == key_length && !memcmp(cache[i]->key, key, (size_t)key_length)) {
            found = cache[i];
            break;
        }
    }
    CodeTables *copy = malloc(sizeof(CodeTables));
    if (!copy) return NULL;
    if (found) {
        memcpy(copy, found, sizeof(CodeTables));
        return copy;
    }
    memcpy(copy->key, key, (size_t)key_length);
    copy->key_length = key_length;
    if (!build_table(raw, &copy->table)) {
        free(copy);
        return NULL;
    }
    if (is_ac)
        build_multi(copy);
    else
        build_dcfast(&copy->table);
    CodeTables *kept = malloc(sizeof(CodeTables));
    if (kept) {
        memcpy(kept, copy, sizeof(CodeTables));
        free(cache[cache_next]);
        cache[cache_next] = kept;
        cache_next = (cache_next + 1) % CACHE_SIZE;
    }
    return copy;
}

/* Skip one block's AC coefficients; 0 on corrupt data. */
static inline int skip_ac(BitReader *br, const CodeTables *ac) {
    int k = 1;
    uint32_t e;
    int next;
    for (;;) {
        for (;;) {
            /* Branchy refill: keeps the load off the dependency chain of most look-ups; 32 bits
             * cover one look-up (up to 27) or a slow-path symbol (31). */
            if (br->nbits < 32) refill(br);
            e = ac->multi[br->buf >> (64 - MULTI_BITS)];
            next = k + (int)(e >> 5);
            if (next >= 64) break;
            consume(br, (int)(e & 31));
            k = next;
        }
        if (next >= 128 + 1 && next < 128 + 64) { /* ends with EOB inside the block */
            consume(br, (int)(e & 31));
            return 1;
        }
        if (next == 64) { /* the block's last coefficient */
            consume(br, (int)(e & 31));
            return 1;
        }
        /* One symbol at a time: a long code, or the block ends inside the window. */
        int length;
        int sym = decode_top(&ac->table, br->buf, &length);
        if (sym < 0) return 0;
        consume(br, length);
        int run = sym >> 4, size = sym & 15;
        if (size) {
            consume(br, size);
            k += run + 1;
        } else if (run == 15) {
            k += 16;
        } else {
            return 1;
        }
        if (k >= 64) return 1; /* libjpeg ends the block here too, even past 63 */
    }
}

static inline int decode_dc(BitReader *br, const HuffTable *t, int *diff) {
    if (br->nbits < 32) refill(br);
    uint16_t e = t->dcfast[br->buf >> (64 - DC_BITS)];
    int length, size;
    if (e) {
        length = e & 15;
        size = e >> 4;
    } else {
        size = decode_top(t, br->buf, &length);
        if (size < 0 || size > 11) return 0;
    }
    uint64_t bits = br->buf << length;
    /* The size magnitude bits, and JPEG's sign rule without branches: a leading 0 bit means
     * v - (2^size - 1). Both shifts stay below 64 for size 0, which gives 0. */
    int64_t v = (int64_t)((bits >> 1) >> (63 - size));
    int64_t negative = (int64_t)~bits >> 63;
    *diff = (int)(v + (negative << size) - negative);
    consume(br, length + size);
    return 1;
}

/* Copy the entropy-coded data from `p` with byte stuffing removed; restart markers split it
 * into segments (their starts go to seg_starts). Returns the position of the marker that ends
 * the scan, or NULL if the data runs out first or a restart marker is out of order. */
static const uint8_t *destuff(const uint8_t *p, const uint8_t *end, uint8_t *out, size_t *out_length,
                              size_t **seg_starts, int *nseg, int *seg_cap) {
    size_t n = 0;
    (*seg_starts)[0] = 0;
    *nseg = 1;
    while (p < end) {
        const uint8_t *ff = memchr(p, 0xFF, (size_t)(end - p));
        if (!ff) return NULL;
        memcpy(out + n, p, (size_t)(ff - p));
        n += (size_t)(ff - p);
        p = ff + 1;
        while (p < end && *p == 0xFF) p++; /* fill bytes */
        if (p >= end) return NULL;
        if (*p == 0x00) {
            out[n++] = 0xFF;
            p++;
        } else if (*p >= 0xD0 && *p <= 0xD7) {
            /* Out-of-order restart markers make libjpeg resynchronise: left to it. */
            if (*p - 0xD0 != (*nseg - 1) % 8) return NULL;
            p++;
            if (*nseg == *seg_cap) {
                *seg_cap *= 2;
                size_t *grown = realloc(*seg_starts, sizeof(size_t) * (size_t)*seg_cap);
                if (!grown) return NULL;
                *seg_starts = grown;
            }
            (*seg_starts)[(*nseg)++] = n;
        } else {
            *out_length = n;
            return p - 1; /* the 0xFF of the next marker */
        }
    }
    return NULL;
}

typedef struct {
    int ncomp;
    int index[MAX_COMPONENTS]; /* into Decoder.comp */
    int td[MAX_COMPONENTS], ta[MAX_COMPONENTS];
} Scan;

/* One block of an MCU: which component, its tables, and where it lands in the luma grid. */
typedef struct {
    int comp;
    const HuffTable *dc;
    const CodeTables *ac;
    int luma;   /* component 0: its DC is stored */
    int dx, dy; /* block offset inside the MCU, in blocks */
    int offset; /* of the block in the DC grid, from the MCU's first block; -1 if not luma */
} BlockPlan;

#define MAX_MCU_BLOCKS 10 /* the JPEG limit on blocks per MCU */


typedef struct {
    const uint8_t *data;
    size_t length;
    const size_t *segs;
    int nseg, restart_interval;
    int32_t *grid;
    int stride, step_x, step_y, mcus_w, mcus_h;
} ScanState;

/* Every MCU of a scan: DC values of component 0 into the grid, AC coefficients skipped. */
static inline __attribute__((always_inline)) int mcu_rows(const ScanState *st, const BlockPlan *plan,
                                                           const int nblocks) {
    int pred[MAX_COMPONENTS] = {0};
    BitReader br;
    int seg = 0;
    br.p = st->data;
    br.end = st->data + (st->nseg > 1 ? st->segs[1] : st->length);
    br.buf = 0;
    br.nbits = 0;
    const int ri = st->restart_interval;
    int until_restart = ri;
    for (int my = 0; my < st->mcus_h; my++) {
        int32_t *row = st->grid + (size_t)my * st->step_y * st->stride;
        for (int mx = 0; mx < st->mcus_w; mx++) {
            if (ri) {
                if (until_restart == 0) {
                    /* Restart: continue byte-aligned at the next segment, DC predictions reset. */
                    if (++seg >= st->nseg) return 0;
                    br.p = st->data + st->segs[seg];
                    br.end = st->data + (seg + 1 < st->nseg ? st->segs[seg + 1] : st->length);
                    br.buf = 0;
                    br.nbits = 0;
                    memset(pred, 0, sizeof(pred));
                    until_restart = ri;
                }
                until_restart--;
            }
            int32_t *mcu = row + mx * st->step_x;
            for (int b = 0; b < nblocks; b++) {
                const BlockPlan *bp = &plan[b];
                int diff;
                if (!decode_dc(&br, bp->dc, &diff)) return 0;
                int value = pred[bp->comp] += diff;
                if (bp->offset >= 0) mcu[bp->offset] = value;
                if (!skip_ac(&br, bp->ac)) return 0;
            }
            /* Bits consumed beyond the segment's data mean truncated or corrupt data. Checked
             * per MCU: one MCU reads at most ~2 KiB past it, into the zero padding. */
            if (br.p - (br.nbits >> 3) > br.end) return 0;
        }
    }
    return 1;
}

/* Decode one scan's entropy data (GIL released); 0 on corrupt or truncated data. */
SCAN_CLONES static int decode_scan(Decoder *d, const Scan *s, const uint8_t *data, size_t length, const size_t *segs,
                       int nseg) {
    BlockPlan plan[MAX_MCU_BLOCKS];
    int nblocks = 0;
    int interleaved = s->ncomp > 1;
    for (int ci = 0; ci < s->ncomp; ci++) {
        const Component *c = &d->comp[s->index[ci]];
        int bh = interleaved ? c->v : 1, bw = interleaved ? c->h : 1;
        for (int by = 0; by < bh; by++) {
            for (int bx = 0; bx < bw; bx++) {
                if (nblocks == MAX_MCU_BLOCKS) return 0;
                BlockPlan *bp = &plan[nblocks++];
                bp->comp = s->index[ci];
                bp->dc = &d->dc[s->td[ci]]->table;
                bp->ac = d->ac[s->ta[ci]];
                bp->luma = s->index[ci] == 0;
                bp->dx = bx;
                bp->dy = by;
            }
        }
    }
    int mcus_w, mcus_h, step_x, step_y;
    if (interleaved) {
        mcus_w = (d->width + 8 * d->hmax - 1) / (8 * d->hmax);
        mcus_h = (d->height + 8 * d->vmax - 1) / (8 * d->vmax);
        step_x = d->comp[0].h;
        step_y = d->comp[0].v;
    } else {
        const Component *c = &d->comp[s->index[0]];
        mcus_w = c->blocks_w;
        mcus_h = c->blocks_h;
        step_x = step_y = 1;
    }
    const Component *luma = &d->comp[0];
    /* DC values of component 0 go to a grid padded to whole MCUs (no bounds check per block);
     * what lies inside the image is turned into pixels at the end. */
    const int stride = mcus_w * step_x;
    int grid_owned;
    int32_t *grid = reusable(grid_slot(), sizeof(int32_t) * (size_t)stride * (size_t)(mcus_h * step_y), &grid_owned);
    if (!grid) return 0;
    for (int b = 0; b < nblocks; b++) plan[b].offset = plan[b].luma ? plan[b].dy * stride + plan[b].dx : -1;
    ScanState st = {
        .data = data, .length = length, .segs = segs, .nseg = nseg, .restart_interval = d->restart_interval,
        .grid = grid, .stride = stride, .step_x = step_x, .step_y = step_y, .mcus_w = mcus_w, .mcus_h = mcus_h,
    };
    int ok = 0;
    /* The usual layouts get a copy of the MCU loop with a fixed block count (unrolled). */
    switch (nblocks) {
    case 1: ok = mcu_rows(&st, plan, 1); break;  /* greyscale, or one component per scan */
    case 3: ok = mcu_rows(&st, plan, 3); break;  /* 4:4:4 */
    case 4: ok = mcu_rows(&st, plan, 4); break;  /* 4:2:2 */
    case 6: ok = mcu_rows(&st, plan, 6); break;  /* 4:2:0 */
    default: ok = mcu_rows(&st, plan, nblocks); break;
    }
    if (!ok) goto done;
    int has_luma = 0;
    for (int b = 0; b < nblocks; b++) has_luma |= plan[b].luma;
    if (has_luma) {
        const int q = d->qdc[luma->tq];
        const int w = luma->blocks_w;
        for (int y = 0; y < luma->blocks_h; y++) {
            const int32_t *in = grid + (size_t)y * stride;
            uint8_t *out = d->out + (size_t)y * w;
            for (int x = 0; x < w; x++) {
                /* jpeg_idct_1x1's range_limit[DESCALE(dc * q, 3) & RANGE_MASK]: libjpeg-turbo's table
                 * (level shift, clamping, and its wrap-around far outside), as arithmetic */
                int v = ((in[x] * q + 4) >> 3) & 1023;
                out[x] = (uint8_t)(v < 128 ? v + 128 : v < 512 ? 255 : v < 896 ? 0 : v - 896);
            }
        }
    }
done:
    if (grid_owned) free(grid);
    return ok;
}

static int read_u16(const uint8_t *p) { return (p[0] << 8) | p[1]; }

/* Parse one DHT segment. */
static int parse_dht(Decoder *d, const uint8_t *p, int length) {
    while (length > 0) {
        if (length < 17) return 0;
        int tc = p[0] >> 4, th = p[0] & 15;
        if (tc > 1 || th > 3) return 0;
        int n = 0;
        for (int i = 0; i < 16; i++) n += p[1 + i];
        if (n > 256 || 17 + n > length) return 0;
        RawTable raw;
        memcpy(raw.counts, p + 1, 16);
        memcpy(raw.symbols, p + 17, (size_t)n);
        raw.nsymbols = n;
        CodeTables **slot = tc ? &d->ac[th] : &d->dc[th];
        free(*slot);
        *slot = cached_tables(&raw, tc);
        if (!*slot) return 0;
        p += 17 + n;
        length -= 17 + n;
    }
    return 1;
}

static int parse_dqt(Decoder *d, const uint8_t *p, int length) {
    while (length > 0) {
        int pq = p[0] >> 4, tq = p[0] & 15;
        int size = pq ? 129 : 65;
        if (tq > 3 || pq > 1 || length < size) return 0;
        d->qdc[tq] = pq ? read_u16(p + 1) : p[1];
        d->qdefined[tq] = 1;
        p += size;
        length -= size;
    }
    return 1;
}

static int parse_sof(Decoder *d, const uint8_t *p, int length) {
    if (length < 6 || p[0] != 8) return 0;
    d->height = read_u16(p + 1);
    d->width = read_u16(p + 3);
    d->ncomp = p[5];
    if (d->width == 0 || d->height == 0) return 0; /* height 0 means a DNL marker follows */
    if ((d->ncomp != 1 && d->ncomp != 3) || length < 6 + 3 * d->ncomp) return 0;
    d->hmax = d->vmax = 1;
    for (int i = 0; i < d->ncomp; i++) {
        Component *c = &d->comp[i];
        c->id = p[6 + 3 * i];
        c->h = p[7 + 3 * i] >> 4;
        c->v = p[7 + 3 * i] & 15;
        c->tq = p[8 + 3 * i];
        if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4 || c->tq > 3) return 0;
        if (c->h > d->hmax) d->hmax = c->h;
        if (c->v > d->vmax) d->vmax = c->v;
    }
    if (d->comp[0].h != d->hmax || d->comp[0].v != d->vmax) return 0;
    for (int i = 0; i < d->ncomp; i++) {
        Component *c = &d->comp[i];
        c->width = (d->width * c->h + d->hmax - 1) / d->hmax;
        c->height = (d->height * c->v + d->vmax - 1) / d->vmax;
        c->blocks_w = (c->width + 7) / 8;
        c->blocks_h = (c->height + 7) / 8;
    }
    return 1;
}

/* libjpeg's guess of the colour space of a 3-component file: only YCbCr is handled here. */
static int is_ycbcr(const Decoder *d) {
    if (d->saw_jfif) return 1;
    if (d->saw_adobe) return d->adobe_transform != 0;
    int a = d->comp[0].id, b = d->comp[1].id, c = d->comp[2].id;
    if (a == 1 && b == 2 && c == 3) return 1;
    if (a == 82 && b == 71 && c == 66) return 0; /* 'R', 'G', 'B' */
    return 1;
}

/* Returns 1 with d->out filled, 0 when the file is not handled. */
static int decode(Decoder *d) {
    const uint8_t *p = d->data, *end = d->data + d->length;
    if (d->length < 4 || p[0] != 0xFF || p[1] != 0xD8) return 0;
    p += 2;
    int have_frame = 0;
    int scanned = 0; /* bit i: component i had its scan */
    int seg_cap = 64;
    size_t *segs = malloc(sizeof(size_t) * (size_t)seg_cap);
    if (!segs) return 0;
    int ok = 0;
    for (;;) {
        while (p < end && *p != 0xFF) p++; /* tolerate junk between markers, as libjpeg does */
        while (p < end && *p == 0xFF) p++;
        if (p >= end) break;
        int marker = *p++;
        if (marker == 0xD9) { /* EOI */
            ok = d->luma_done;
            break;
        }
        if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;
        if (end - p < 2) break;
        int length = read_u16(p);
        if (length < 2 || end - p < length) break;
        const uint8_t *body = p + 2;
        int body_length = length - 2;
        p += length;
        if (marker == 0xC0 || marker == 0xC1) {
            if (have_frame || !parse_sof(d, body, body_length)) break;
            have_frame = 1;
            if (d->ncomp == 3 && !is_ycbcr(d)) break;
            if ((d->width < d->height ? d->width : d->height) < d->min_side) break;
            if (d->max_pixels && (long long)d->width * d->height > d->max_pixels) break;
            size_t n = (size_t)d->comp[0].blocks_w * d->comp[0].blocks_h;
            d->out = malloc(n + THUMB_PADDING); /* lanczos_thumbnail() reads past the end */
            if (!d->out) break;
        } else if ((marker >= 0xC2 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) ||
                   marker == 0xDC) {
            break; /* progressive, lossless, arithmetic, hierarchical or DNL */
        } else if (marker == 0xC4) {
            if (!parse_dht(d, body, body_length)) break;
        } else if (marker == 0xCC) {
            break; /* arithmetic conditioning */
        } else if (marker == 0xDB) {
            if (!parse_dqt(d, body, body_length)) break;
        } else if (marker == 0xDD) {
            if (body_length < 2) break;
            d->restart_interval = read_u16(body);
        } else if (marker == 0xE0) {
            if (body_length >= 5 && !memcmp(body, "JFIF\0", 5)) d->saw_jfif = 1;
        } else if (marker == 0xEE) {
            if (body_length >= 12 && !memcmp(body, "Adobe", 5)) {
                d->saw_adobe = 1;
                d->adobe_transform = body[11];
            }
        } else if (marker == 0xDA) {
            if (!have_frame || body_length < 1) break;
            Scan s;
            s.ncomp = body[0];
            if (s.ncomp < 1 || s.ncomp > d->ncomp || body_length < 4 + 2 * s.ncomp) break;
            int bad = 0;
            for (int i = 0; i < s.ncomp; i++) {
                int cid = body[1 + 2 * i], tables = body[2 + 2 * i];
                int idx = -1;
                for (int j = 0; j < d->ncomp; j++)
                    if (d->comp[j].id == cid) idx = idx < 0 ? j : MAX_COMPONENTS; /* twice: bad */
                /* A component in two scans, or twice in one, is not baseline: left to libjpeg. */
                if (idx < 0 || idx >= MAX_COMPONENTS || (scanned & (1 << idx))) {
                    bad = 1;
                    break;
                }
                scanned |= 1 << idx;
                s.index[i] = idx;
                s.td[i] = tables >> 4;
                s.ta[i] = tables & 15;
                if (s.td[i] > 3 || s.ta[i] > 3 || !d->dc[s.td[i]] ||
                    !d->ac[s.ta[i]] || !d->qdefined[d->comp[idx].tq])
                    bad = 1;
            }
            const uint8_t *tail = body + 1 + 2 * s.ncomp;
            if (bad || tail[0] != 0 || tail[1] != 63 || tail[2] != 0) break; /* not sequential */
            if (!d->scratch) {
                d->scratch = reusable(scratch_slot(), d->length + PADDING, &d->scratch_owned);
                if (!d->scratch) break;
            }
            size_t data_length = 0;
            int nseg = 0;
            const uint8_t *next = destuff(p, end, d->scratch, &data_length, &segs, &nseg, &seg_cap);
            if (!next) break; /* no marker after the data: truncated file */
            memset(d->scratch + data_length, 0, PADDING);
            int scan_ok;
            Py_BEGIN_ALLOW_THREADS
            scan_ok = decode_scan(d, &s, d->scratch, data_length, segs, nseg);
            Py_END_ALLOW_THREADS
            if (!scan_ok) break;
            for (int i = 0; i < s.ncomp; i++)
                if (s.index[i] == 0) d->luma_done = 1;
            p = next;
        }
    }
    free(segs);
    return ok;
}

/* ---- the 32x32 Lanczos thumbnail and the DCT of pipeline.image.phash's fast mode ----------- */

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

static void release(Decoder *d) {
    for (int i = 0; i < 4; i++) {
        free(d->ac[i]);
        free(d->dc[i]);
    }
    free(d->out);
    if (d->scratch_owned) free(d->scratch);
}

PyDoc_STRVAR(luma_doc,
             "luma_dc(data) -> (width, height, pixels) or None\n\n"
             "The 1/8-scale greyscale image of a baseline JPEG from its DC coefficients, the pixels\n"
             "libjpeg-turbo gives for draft('L') at scale 1/8; None for anything else.");

static PyObject *luma_dc(PyObject *self, PyObject *arg) {
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Decoder d;
    memset(&d, 0, sizeof(d));
    d.data = view.buf;
    d.length = (size_t)view.len;
    PyObject *result;
    if (decode(&d)) {
        const Component *c = &d.comp[0];
        result = Py_BuildValue("(iiy#)", c->blocks_w, c->blocks_h, (const char *)d.out,
                               (Py_ssize_t)c->blocks_w * c->blocks_h);
    } else {
        result = Py_NewRef(Py_None);
    }
    release(&d);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(configure_doc, "configure(dct) -> None\n\nThe 8x32 float64 DCT-II matrix (row-major bytes) phash_dc() uses.");

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

PyDoc_STRVAR(phash_doc,
             "phash_dc(data, min_side, max_short_side, max_pixels) -> int or None\n\n"
             "pipeline.image.phash's fast-mode pHash of a baseline JPEG from its 1/8-scale luminance,\n"
             "when the original's short side is at least min_side, the 1/8 image's short side below\n"
             "max_short_side and the pixel count at most max_pixels (0: no limit); None otherwise.");

static PyObject *phash_dc(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer view;
    int min_side, max_short_side;
    long long max_pixels;
    if (!PyArg_ParseTuple(args, "y*iiL", &view, &min_side, &max_short_side, &max_pixels)) return NULL;
    if (!dct_ready) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "configure() was not called");
        return NULL;
    }
    Decoder d;
    memset(&d, 0, sizeof(d));
    d.data = view.buf;
    d.length = (size_t)view.len;
    d.min_side = min_side;
    d.max_pixels = max_pixels;
    PyObject *result = NULL;
    if (decode(&d)) {
        const Component *c = &d.comp[0];
        int short_side = c->blocks_w < c->blocks_h ? c->blocks_w : c->blocks_h;
        if (short_side < max_short_side) {
            int ok;
            uint64_t hash;
            Py_BEGIN_ALLOW_THREADS
            hash = grey_phash(d.out, c->blocks_w, c->blocks_h, &ok);
            Py_END_ALLOW_THREADS
            if (ok) result = PyLong_FromUnsignedLongLong(hash);
        }
    }
    if (!result && !PyErr_Occurred()) result = Py_NewRef(Py_None);
    release(&d);
    PyBuffer_Release(&view);
    return result;
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
             "The 32x32 Lanczos thumbnail phash_dc() hashes (Pillow's resize, for testing).");

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
    {"luma_dc", luma_dc, METH_O, luma_doc},
    {"configure", configure, METH_O, configure_doc},
    {"phash_dc", phash_dc, METH_VARARGS, phash_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_jpegdc", "DC-only decoding of baseline JPEGs for perceptual hashing.", -1, methods,
};

PyMODINIT_FUNC PyInit__jpegdc(void) {
    if (pthread_key_create(&buffers_key, free_buffers)) {
        PyErr_SetString(PyExc_RuntimeError, "pthread_key_create failed");
        return NULL;
    }
    return PyModule_Create(&module);
}
