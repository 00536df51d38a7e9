/* The pointwise loops, instantiated by pointwise.h for REAL = float (suffix _f) and double (_d).
 * No include guard on purpose.  Names: fr_<what>_f / fr_<what>_d.  See pointwise.h for conventions. */

#define FR_FN(name) FR_CAT(FR_CAT(fr_, name), FR_SFX)
#define FR_TANH FR_FN(tanh)
#define FR_GATE FR_FN(gate)
#define FR_EXPNEG FR_FN(expneg)
#define FR_SIGMOID FR_FN(sigmoid)
#define FR_LANES 16

/* RNN forward step, in place: A (N, H) holds x Wx + h Wh and gets h = tanh(A + b); h is also copied to
 * hs (the next row block of the h stack) unless hs is NULL. */
FR_CLONES static void FR_FN(rnn_fwd)(ptrdiff_t N, ptrdiff_t H, REAL *A, ptrdiff_t lda, const REAL *restrict b,
                                     REAL *restrict hs, ptrdiff_t lds)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        REAL *restrict a = A + n * lda;
        if (hs && n + FR_PF_ROWS < N)  /* A was just written by the product; hs is far */
            fr_prefetch_span(hs + (n + FR_PF_ROWS) * lds, (size_t)H * sizeof(REAL), 1);
        for (ptrdiff_t j = 0; j < H; j++)
            a[j] = FR_TANH(a[j] + b[j]);
        if (hs)
            memcpy(hs + n * lds, a, (size_t)H * sizeof(REAL));
    }
}

/* One row of lstm_fwd: nu hidden units, one restrict pointer per gate block (see lstm_bwd_row). */
FR_INLINE void FR_FN(lstm_fwd_row)(ptrdiff_t nu, REAL *restrict ai, REAL *restrict af,
                                       REAL *restrict ao, REAL *restrict ag, const REAL *restrict bi,
                                       const REAL *restrict bf, const REAL *restrict bo, const REAL *restrict bg,
                                       const REAL *restrict cprev, REAL *restrict c, REAL *restrict tc,
                                       REAL *restrict h)
{
    for (ptrdiff_t j = 0; j < nu; j++) {
        REAL i = FR_GATE(ai[j] + bi[j]), f = FR_GATE(af[j] + bf[j]), o = FR_GATE(ao[j] + bo[j]);
        REAL g = FR_TANH(ag[j] + bg[j]);
        REAL cv = f * cprev[j] + i * g;
        REAL t = FR_TANH(cv);
        ai[j] = i;
        af[j] = f;
        ao[j] = o;
        ag[j] = g;
        c[j] = cv;
        tc[j] = t;
        h[j] = o * t;
    }
}

/* LSTM forward step for nu hidden units (a slab: the gate blocks i, f, o, g of a row lie gs = H apart,
 * in A and in b).  A (N, 4H) holds the pre-activations without the bias and gets the activated gates;
 * writes c = f cprev + i g, tc = tanh(c), h = o tc, and h again to hs unless hs is NULL. */
FR_CLONES static void FR_FN(lstm_fwd)(ptrdiff_t N, ptrdiff_t nu, ptrdiff_t gs, REAL *A, ptrdiff_t lda, const REAL *b,
                                      const REAL *cprev, ptrdiff_t ldcp, REAL *c, ptrdiff_t ldc,
                                      REAL *tc, ptrdiff_t ldtc, REAL *h, ptrdiff_t ldh, REAL *hs, ptrdiff_t lds,
                                      int far)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        REAL *a = A + n * lda;
        if (far && n + FR_PF_ROWS < N) {  /* the gates were just written by the product; the rest is far */
            const ptrdiff_t m = n + FR_PF_ROWS;
            const size_t bytes = (size_t)nu * sizeof(REAL);
            fr_prefetch_span(cprev + m * ldcp, bytes, 0);
            fr_prefetch_span(c + m * ldc, bytes, 1);
            fr_prefetch_span(tc + m * ldtc, bytes, 1);
            fr_prefetch_span(h + m * ldh, bytes, 1);
            if (hs)
                fr_prefetch_span(hs + m * lds, bytes, 1);
        }
        FR_FN(lstm_fwd_row)(nu, a, a + gs, a + 2 * gs, a + 3 * gs, b, b + gs, b + 2 * gs, b + 3 * gs,
                            cprev + n * ldcp, c + n * ldc, tc + n * ldtc, h + n * ldh);
        if (hs)
            memcpy(hs + n * lds, h + n * ldh, (size_t)nu * sizeof(REAL));
    }
}

/* RNN backward step: dA = (dh + dhp) (1 - h^2); db += dA (summed over the N rows). */
FR_INLINE void FR_FN(rnn_bwd_row)(ptrdiff_t H, const REAL *restrict dh, const REAL *restrict dhp,
                                      const REAL *restrict h, REAL *restrict da, REAL *restrict db)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        REAL d = (dh[j] + dhp[j]) * (1 - h[j] * h[j]);
        da[j] = d;
        db[j] += d;
    }
}

FR_CLONES static void FR_FN(rnn_bwd)(ptrdiff_t N, ptrdiff_t H, const REAL *dh, ptrdiff_t lddh,
                                     const REAL *dhp, ptrdiff_t lddhp, const REAL *h, ptrdiff_t ldh,
                                     REAL *dA, ptrdiff_t ldda, REAL *db, int far)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        if (far && n + FR_PF_ROWS < N) {  /* dhp is the step's own; the rest is far */
            const ptrdiff_t m = n + FR_PF_ROWS;
            fr_prefetch_span(dh + m * lddh, (size_t)H * sizeof(REAL), 0);
            fr_prefetch_span(h + m * ldh, (size_t)H * sizeof(REAL), 0);
            fr_prefetch_span(dA + m * ldda, (size_t)H * sizeof(REAL), 1);
        }
        FR_FN(rnn_bwd_row)(H, dh + n * lddh, dhp + n * lddhp, h + n * ldh, dA + n * ldda, db);
    }
}

/* One row of lstm_bwd.  Restrict parameters, one per gate block: what lets gcc vectorize it without
 * alias checks (with one pointer per 4H row it gives up on the accesses H apart). */
FR_INLINE void FR_FN(lstm_bwd_row)(ptrdiff_t H, const REAL *restrict dh, const REAL *restrict dhp,
                                       REAL *restrict dc, const REAL *restrict gi, const REAL *restrict gf,
                                       const REAL *restrict go, const REAL *restrict gg, const REAL *restrict tc,
                                       const REAL *restrict cprev, REAL *restrict dai, REAL *restrict daf,
                                       REAL *restrict dao, REAL *restrict dag, REAL *restrict dbi,
                                       REAL *restrict dbf, REAL *restrict dbo, REAL *restrict dbg)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        REAL i = gi[j], f = gf[j], o = go[j], g = gg[j], t = tc[j];
        REAL dht = dh[j] + dhp[j];
        REAL d = dc[j] + dht * o * (1 - t * t);
        REAL vi = d * g * i * (1 - i);
        REAL vf = d * cprev[j] * f * (1 - f);
        REAL vo = dht * t * o * (1 - o);
        REAL vg = d * i * (1 - g * g);
        dai[j] = vi;
        daf[j] = vf;
        dao[j] = vo;
        dag[j] = vg;
        dbi[j] += vi;
        dbf[j] += vf;
        dbo[j] += vo;
        dbg[j] += vg;
        dc[j] = d * f;
    }
}

/* LSTM backward step for nu hidden units (gate blocks gs = H apart in gates, dA and db).  dc (N, nu)
 * holds the cell gradient flowing in from the next step and gets the one flowing to the previous step
 * (dc f); gates (N, 4H) are the activated i, f, o, g; tc = tanh(c).  Writes dA (N, 4H), the gradient
 * of the pre-activations, and adds its column sums to db. */
FR_CLONES static void FR_FN(lstm_bwd)(ptrdiff_t N, ptrdiff_t nu, ptrdiff_t gs, const REAL *dh, ptrdiff_t lddh,
                                      const REAL *dhp, ptrdiff_t lddhp, REAL *dc, ptrdiff_t lddc,
                                      const REAL *gates, ptrdiff_t ldg, const REAL *tc, ptrdiff_t ldtc,
                                      const REAL *cprev, ptrdiff_t ldcp, REAL *dA, ptrdiff_t ldda, REAL *db,
                                      int far)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        const REAL *g = gates + n * ldg;
        REAL *da = dA + n * ldda;
        if (far && n + FR_PF_ROWS < N) {  /* what the forward left, long evicted; dhp and dc are the step's own */
            const ptrdiff_t m = n + FR_PF_ROWS;
            const size_t bytes = (size_t)nu * sizeof(REAL);
            for (int q = 0; q < 4; q++) {
                fr_prefetch_span(gates + m * ldg + q * gs, bytes, 0);
                fr_prefetch_span(dA + m * ldda + q * gs, bytes, 1);
            }
            fr_prefetch_span(tc + m * ldtc, bytes, 0);
            fr_prefetch_span(cprev + m * ldcp, bytes, 0);
            fr_prefetch_span(dh + m * lddh, bytes, 0);
        }
        FR_FN(lstm_bwd_row)(nu, dh + n * lddh, dhp + n * lddhp, dc + n * lddc, g, g + gs, g + 2 * gs, g + 3 * gs,
                            tc + n * ldtc, cprev + n * ldcp, da, da + gs, da + 2 * gs, da + 3 * gs,
                            db, db + gs, db + 2 * gs, db + 3 * gs);
    }
}

/* One row of gru_fwd.  One restrict pointer per gate block (see lstm_bwd_row). */
FR_INLINE void FR_FN(gru_fwd_row)(ptrdiff_t H, REAL *restrict ar, REAL *restrict az, REAL *restrict an,
                                      const REAL *restrict rr, const REAL *restrict rz, const REAL *restrict rn,
                                      const REAL *restrict bhn, const REAL *restrict hp, REAL *restrict hn,
                                      REAL *restrict h)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        REAL r = FR_SIGMOID(ar[j] + rr[j]), z = FR_SIGMOID(az[j] + rz[j]);
        REAL q = rn[j] + bhn[j];
        REAL n = FR_TANH(an[j] + r * q);
        ar[j] = r;
        az[j] = z;
        an[j] = n;
        hn[j] = q;
        h[j] = n + z * (hp[j] - n); /* (1 - z) n + z hp */
    }
}

/* GRU forward step.  A (N, 3H) holds x Wx + b (blocks r, z, n) and gets the activated r, z, n; R (N, 3H)
 * holds hp Wh, hp (N, H) being the previous state.  Writes hn = hp Wh_n + bhn, h = (1 - z) n + z hp, and h
 * again to hs unless hs is NULL.  r and z use the relatively accurate sigmoid. */
FR_CLONES static void FR_FN(gru_fwd)(ptrdiff_t N, ptrdiff_t H, REAL *A, ptrdiff_t lda, const REAL *R, ptrdiff_t ldr,
                                     const REAL *bhn, const REAL *hp, ptrdiff_t ldhp, REAL *hn, ptrdiff_t ldhn,
                                     REAL *h, ptrdiff_t ldh, REAL *hs, ptrdiff_t lds)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        REAL *a = A + n * lda;
        const REAL *r = R + n * ldr;
        FR_FN(gru_fwd_row)(H, a, a + H, a + 2 * H, r, r + H, r + 2 * H, bhn, hp + n * ldhp, hn + n * ldhn,
                           h + n * ldh);
        if (hs)
            memcpy(hs + n * lds, h + n * ldh, (size_t)H * sizeof(REAL));
    }
}

/* One row of gru_fwd_units: nu hidden units, one restrict pointer per gate block (see lstm_bwd_row). */
FR_INLINE void FR_FN(gru_fwd_units_row)(ptrdiff_t nu, REAL *restrict ar, REAL *restrict az, REAL *restrict an,
                                            const REAL *restrict br, const REAL *restrict bz,
                                            const REAL *restrict bn, REAL *restrict hn, const REAL *restrict bhn,
                                            const REAL *restrict hp, REAL *restrict h)
{
    for (ptrdiff_t j = 0; j < nu; j++) {
        REAL r = FR_SIGMOID(ar[j] + br[j]), z = FR_SIGMOID(az[j] + bz[j]);
        REAL q = hn[j] + bhn[j];
        REAL n = FR_TANH(an[j] + bn[j] + r * q);
        ar[j] = r;
        az[j] = z;
        an[j] = n;
        hn[j] = q;
        h[j] = n + z * (hp[j] - n); /* (1 - z) n + z hp */
    }
}

/* GRU forward step for nu hidden units of the team's slab (gate blocks r, z, n gs = H apart in A and b),
 * the recurrent products already in place: A (N, 3H) holds x Wx + hp Wh in its r and z blocks and x Wx in
 * its n block (no bias) and gets the activated r, z, n; hn (N, nu) holds hp Wh_n and gets hp Wh_n + bhn.
 * Writes h = (1 - z) n + z hp, and h again to hs unless hs is NULL.  r and z use the relatively accurate
 * sigmoid, as gru_fwd. */
FR_CLONES static void FR_FN(gru_fwd_units)(ptrdiff_t N, ptrdiff_t nu, ptrdiff_t gs, REAL *A, ptrdiff_t lda,
                                           const REAL *b, REAL *hn, ptrdiff_t ldhn, const REAL *bhn,
                                           const REAL *hp, ptrdiff_t ldhp, REAL *h, ptrdiff_t ldh, REAL *hs,
                                           ptrdiff_t lds)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        REAL *a = A + n * lda;
        if (n + FR_PF_ROWS < N) {  /* A and hn were just written by the products; the rest is far */
            const ptrdiff_t m = n + FR_PF_ROWS;
            const size_t bytes = (size_t)nu * sizeof(REAL);
            fr_prefetch_span(hp + m * ldhp, bytes, 0);
            fr_prefetch_span(h + m * ldh, bytes, 1);
            if (hs)
                fr_prefetch_span(hs + m * lds, bytes, 1);
        }
        FR_FN(gru_fwd_units_row)(nu, a, a + gs, a + 2 * gs, b, b + gs, b + 2 * gs, hn + n * ldhn, bhn,
                                 hp + n * ldhp, h + n * ldh);
        if (hs)
            memcpy(hs + n * lds, h + n * ldh, (size_t)nu * sizeof(REAL));
    }
}

/* One row of gru_bwd. */
FR_INLINE void FR_FN(gru_bwd_row)(ptrdiff_t H, const REAL *restrict dh, REAL *restrict dhc,
                                      const REAL *restrict gr, const REAL *restrict gz, const REAL *restrict gn,
                                      const REAL *restrict hn, const REAL *restrict hp, REAL *restrict dar,
                                      REAL *restrict daz, REAL *restrict dahn, REAL *restrict dan,
                                      REAL *restrict dbr, REAL *restrict dbz, REAL *restrict dbhn,
                                      REAL *restrict dbn)
{
    for (ptrdiff_t j = 0; j < H; j++) {
        REAL r = gr[j], z = gz[j], n = gn[j];
        REAL g = dh[j] + dhc[j];
        REAL vn = g * (1 - z) * (1 - n * n);
        REAL vhn = vn * r;
        REAL vr = vn * hn[j] * r * (1 - r);
        REAL vz = g * (hp[j] - n) * z * (1 - z);
        dar[j] = vr;
        daz[j] = vz;
        dahn[j] = vhn;
        dan[j] = vn;
        dbr[j] += vr;
        dbz[j] += vz;
        dbhn[j] += vhn;
        dbn[j] += vn;
        dhc[j] = g * z;
    }
}

/* GRU backward step for nu hidden units (gate blocks gs = H apart in gates, dA and db; all of them when
 * nu = gs, or the team's slab).  dhc (N, nu, row stride lddhc) holds the gradient of this step's h carried
 * from later steps (the final state's for the last step) and gets the direct part of the previous state's,
 * g z, where g = dh + dhc; the caller then adds dA[:, :3H] Wh^T to it.  gates (N, 3H) are the activated
 * r, z, n; hn = hp Wh_n + bhn; hp the previous state.  Writes dA (N, 4H) = [dr, dz, dhn, dn]
 * (pre-activation gradients of r and z, that of hp Wh_n + bhn, and n's) and adds the column sums of
 * [dr, dz, dn] to db (3H) and of dhn to dbhn. */
FR_CLONES static void FR_FN(gru_bwd)(ptrdiff_t N, ptrdiff_t nu, ptrdiff_t gs, const REAL *dh, ptrdiff_t lddh,
                                     REAL *dhc, ptrdiff_t lddhc, const REAL *gates, ptrdiff_t ldg, const REAL *hn,
                                     ptrdiff_t ldhn, const REAL *hp, ptrdiff_t ldhp, REAL *dA, ptrdiff_t ldda,
                                     REAL *db, REAL *dbhn)
{
    for (ptrdiff_t n = 0; n < N; n++) {
        const REAL *g = gates + n * ldg;
        REAL *da = dA + n * ldda;
        if (n + FR_PF_ROWS < N) {  /* what the forward left, long evicted; dhc is the step's own */
            const ptrdiff_t m = n + FR_PF_ROWS;
            const size_t bytes = (size_t)nu * sizeof(REAL);
            for (int q = 0; q < 3; q++)
                fr_prefetch_span(gates + m * ldg + q * gs, bytes, 0);
            for (int q = 0; q < 4; q++)
                fr_prefetch_span(dA + m * ldda + q * gs, bytes, 1);
            fr_prefetch_span(dh + m * lddh, bytes, 0);
            fr_prefetch_span(hn + m * ldhn, bytes, 0);
            fr_prefetch_span(hp + m * ldhp, bytes, 0);
        }
        FR_FN(gru_bwd_row)(nu, dh + n * lddh, dhc + n * lddhc, g, g + gs, g + 2 * gs, hn + n * ldhn, hp + n * ldhp,
                           da, da + gs, da + 2 * gs, da + 3 * gs, db, db + gs, dbhn, db + 2 * gs);
    }
}

/* out[k] = sigmoid(x[k]), numerically stable. */
FR_CLONES static void FR_FN(sigmoid_loop)(ptrdiff_t n, const REAL *restrict x, REAL *restrict out)
{
    for (ptrdiff_t k = 0; k < n; k++)
        out[k] = FR_SIGMOID(x[k]);
}

/* out[j] += sum over the R rows of A[r, j]. */
FR_CLONES static void FR_FN(colsum)(ptrdiff_t R, ptrdiff_t M, const REAL *restrict A, ptrdiff_t lda,
                                    REAL *restrict out)
{
    for (ptrdiff_t r = 0; r < R; r++) {
        const REAL *restrict ar = A + r * lda;
        for (ptrdiff_t j = 0; j < M; j++)
            out[j] += ar[j];
    }
}

/* Masked softmax cross-entropy, one row of V scores at a time: max, exp and sum, log-sum-exp, the
 * row's loss and its gradient, all while the row is in cache.  dx = mask inv_n (softmax - onehot(y)).
 * Returns the sum over rows of -mask log softmax(x)[y] (not yet divided by N).  Max and sum run in
 * FR_LANES independent lanes, so they vectorize without reassociating anything. */
FR_CLONES static double FR_FN(softmax_loss)(ptrdiff_t R, ptrdiff_t V, const REAL *restrict x,
                                            const ptrdiff_t *restrict y, const REAL *restrict mask,
                                            REAL inv_n, REAL *restrict dx)
{
    double loss = 0.0;
    const ptrdiff_t Vb = V - V % FR_LANES;
    for (ptrdiff_t r = 0; r < R; r++) {
        const REAL *restrict xr = x + r * V;
        REAL *restrict dr = dx + r * V;
        REAL lane[FR_LANES];
        ptrdiff_t j;
        REAL m = xr[0];
        if (Vb) {
            for (int l = 0; l < FR_LANES; l++)
                lane[l] = xr[l];
            for (j = FR_LANES; j < Vb; j += FR_LANES)
                for (int l = 0; l < FR_LANES; l++)
                    lane[l] = (xr[j + l] > lane[l]) ? xr[j + l] : lane[l];
            for (int l = 0; l < FR_LANES; l++)
                m = (lane[l] > m) ? lane[l] : m;
        }
        for (j = Vb; j < V; j++)
            m = (xr[j] > m) ? xr[j] : m;

        for (j = 0; j < V; j++)
            dr[j] = FR_EXPNEG(xr[j] - m);
        REAL s = 0;
        if (Vb) {
            for (int l = 0; l < FR_LANES; l++)
                lane[l] = 0;
            for (j = 0; j < Vb; j += FR_LANES)
                for (int l = 0; l < FR_LANES; l++)
                    lane[l] += dr[j + l];
            for (int l = 0; l < FR_LANES; l++)
                s += lane[l];
        }
        for (j = Vb; j < V; j++)
            s += dr[j];

        const ptrdiff_t yr = y[r];
        const REAL ey = dr[yr];
        loss -= (double)mask[r] * ((double)(xr[yr] - m) - log((double)s));
        const REAL inv_s = 1 / s, scale = mask[r] * inv_n;
        for (j = 0; j < V; j++)
            dr[j] = dr[j] * inv_s * scale;
        dr[yr] = (ey * inv_s - 1) * scale;
    }
    return loss;
}

#undef FR_FN
#undef FR_TANH
#undef FR_GATE
#undef FR_EXPNEG
#undef FR_SIGMOID
#undef FR_LANES
