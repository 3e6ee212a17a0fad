/* Internal representation of a loaded model, shared by the loader (model.c, model_layers.c,
 * model_weights.c: model_load.h) and the forward pass (session.c). Not part of the public
 * API. */
#ifndef BN_MODEL_H
#define BN_MODEL_H

#include <jansson.h>

#include "basisnet.h"
#include "kernels.h"
#include "safetensors.h"

/* Limits that keep a hostile file from asking for absurd allocations. */
#define BN_MAX_LAYERS 1024
#define BN_MAX_DIM 4096            /* input height / width */
#define BN_MAX_CHANNELS 65536
#define BN_MAX_ACT_FLOATS (1u << 26) /* one activation tensor */
#define BN_MAX_BASES 64

typedef enum {
    BN_OP_CONV = 0, BN_OP_LINEAR, BN_OP_ADD, BN_OP_SE, BN_OP_AVGPOOL, BN_OP_MAXPOOL, BN_OP_GAP,
    BN_OP_ACT, BN_OP_COUNT
} bn_op;

typedef enum { BN_RESIZE_AVGPOOL = 0, BN_RESIZE_BILINEAR } bn_resize;

typedef struct {
    const char *name;       /* owned by the model's metadata JSON */
    bn_op op;
    bn_act act, gate;
    int in0, in1;           /* producing layer index in the stage; -1 = stage input */
    bn_conv_shape g;        /* input c,h,w; output oc,oh,ow; window; groups */
    int squeeze;            /* se */
    int synth;              /* synthesized from bases */
    int synth_index;        /* position in synth_layers (alpha row) */
    size_t wcount;          /* weights of one basis / of the weight tensor */
    size_t wstore;          /* floats one basis / the weight takes in memory (>= wcount: padded panels) */
    int pointwise;          /* 1x1 conv run by bn_pointwise on bn_pack_p32 weights */
    int gemm;               /* bn_conv_is_gemm: im2col + the packed GEMM, weights bn_pack_p32 of (oc, kh*kw*c) */
    int p32;                /* weights (and bases) packed by bn_pack_p32 as (oc, bn_layer_gemm_k):
                             * pointwise, gemm convs and linear layers (run by bn_gemv) */
    int fuse_add;           /* pointwise conv: the next layer's residual add runs in this conv's
                             * epilogue (residual from layer fuse_res, -1 = stage input; the act
                             * fuse_act is the add's); add: computed by the conv before it, output
                             * aliased */
    int fuse_res;
    bn_act fuse_act;
    const float *weight;    /* the model's own copies (owned), packed: pointwise (bn_pack_p32), conv (oc,kh,kw,c/g), depthwise (kh,kw,c), linear (out, in in HWC order) */
    const float *bases;     /* (N, wcount), each basis packed like weight */
    const uint16_t *bases16; /* same in IEEE half when the file stores F16 bases (else NULL) */
    const double *gram;     /* synthesized: (N, N) inner products of the bases, <B_i, B_j> */
    const float *bias;
    const float *w1, *b1, *w2, *b2; /* se: (squeeze,c), (squeeze), (c,squeeze), (c) */
    uint64_t madds, params;
} bn_layer;

/* The K of a packed layer's (oc, K) weight matrix (pointwise: c; gemm: kh*kw*c; linear:
 * its c*h*w inputs). */
static inline int bn_layer_gemm_k(const bn_layer *ly)
{
    if (ly->op == BN_OP_LINEAR)
        return ly->g.c * ly->g.h * ly->g.w;
    return ly->gemm ? ly->g.kh * ly->g.kw * ly->g.c : ly->g.c;
}

typedef struct {
    bn_layer *layers;
    int n;
    int c, h, w;            /* stage input */
    int logits, coeffs;     /* layer indices (coeffs -1 for the specialist) */
    uint64_t madds, params;
} bn_stage_def;

struct bn_model {
    char *fname;
    st_file st;             /* the header; tensors' data pointers are NULL after loading */
    json_t *arch;           /* the parsed "basisnet" document */
    bn_model_info info;
    const char **labels;
    float mean[4], std[4];
    bn_resize resize;
    int pool_k;             /* avgpool resize factor */
    bn_stage_def light, spec;
    int *synth_layer;       /* L indices into spec.layers */
    void **owned;           /* heap copies: every weight, bias and basis, Gram matrices */
    int n_owned, cap_owned;
    float *val_conf;
};

#endif
