"""Build TINY random-weight Qwen3-TTS 12Hz checkpoints (CustomVoice, Base, VoiceDesign) for offline tests.

Usage:
    python tests/qwen_tiny.py OUT_ROOT [--kind custom_voice|base|voice_design|both] [--seed 0]

Produces OUT_ROOT/tiny-12hz-customvoice, OUT_ROOT/tiny-12hz-base and/or OUT_ROOT/tiny-12hz-voicedesign
(a VoiceDesign model is 1.7B-sized in name only: pass --model-size 1b7, as the real one is), each loadable with
    Qwen3TTSModel.from_pretrained(dir, device_map="cpu", dtype=torch.float32, attn_implementation="sdpa")

Layout of each checkpoint dir (mirrors the real Qwen/Qwen3-TTS-12Hz-* repos):
    config.json                 (model_type qwen3_tts; hand-written, see TRAP notes)
    generation_config.json      (required: read unconditionally by from_pretrained)
    model.safetensors
    tokenizer.json / tokenizer_config.json / special_tokens_map.json  (Qwen2TokenizerFast)
    speech_tokenizer/{config.json, model.safetensors, preprocessor_config.json}  (12Hz codec)
"""

import argparse
import json
import os
import shutil

import torch

# ---------------------------------------------------------------- sizes
TALKER_HIDDEN = 64  # == speaker encoder enc_dim (x-vector is used as a talker input embedding)
TALKER_LAYERS = 2
TALKER_HEADS = 4
TALKER_KV_HEADS = 2
HEAD_DIM = 16  # mrope_section sums to HEAD_DIM // 2
MROPE_SECTION = [4, 2, 2]
CP_HIDDEN = 32  # code predictor ("sub-talker"); != talker hidden -> exercises small_to_mtp_projection
NUM_CODE_GROUPS = 16  # codebooks per 12.5 Hz frame (same as real model)
CODEBOOK_SIZE = 2048  # codec ids 0..2047 (same as real model)
TALKER_VOCAB = 3072  # 2048 codec ids + 1024 control/lang/speaker ids in [2048, 3072)
TEXT_VOCAB = 1024  # >= len(text tokenizer)
TEXT_HIDDEN = 64

# Control ids: real 12Hz checkpoints use this block. All must be in [TALKER_VOCAB-1024, TALKER_VOCAB).
CODEC_IDS = dict(
    codec_pad_id=2148,
    codec_bos_id=2149,
    codec_eos_token_id=2150,
    codec_think_id=2154,
    codec_nothink_id=2155,
    codec_think_bos_id=2156,
    codec_think_eos_id=2157,
)
LANGUAGES = {
    "english": 2050,
    "german": 2053,
    "spanish": 2054,
    "chinese": 2055,
    "japanese": 2058,
    "french": 2061,
    "sichuan_dialect": 2062,
    "korean": 2064,
    "russian": 2069,
    "italian": 2070,
    "portuguese": 2071,
    "beijing_dialect": 2074,
}
SPEAKERS = {  # name (lowercase!) -> codec id; dialect map is required for every speaker
    "serena": 3066,
    "vivian": 3065,
    "uncle_fu": 3010,
    "ryan": 3061,
    "aiden": 2861,
    "ono_anna": 2873,
    "sohee": 2864,
    "eric": 2875,
    "dylan": 2878,
}
SPK_DIALECT = {k: False for k in SPEAKERS}
SPK_DIALECT.update({"eric": "sichuan_dialect", "dylan": "beijing_dialect"})

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>"]

QWEN2_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def build_text_tokenizer():
    """Tiny byte-level BPE with the Qwen2 pre-tokenizer layout, wrapped as Qwen2TokenizerFast."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast

    tk = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tk.normalizer = normalizers.NFC()
    # TRAP: pre_tokenizer must be a Sequence whose [0] is a Split: Qwen3TTSModel loads the processor with
    # fix_mistral_regex=True, and transformers 4.57.3 then does `pre_tokenizer[0] = Split(...)` for local dirs
    # whose config.json says transformers_version 4.57.3.
    tk.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tk.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    corpus = ["assistant", "user", "system", "\n"] * 200 + [
        "Hello there.",
        "Hello world, this is a tiny test of the text to speech system.",
        "The quick brown fox jumps over the lazy dog.",
        "Speak slowly and clearly, please.",
        "This is the reference transcript for voice cloning.",
        "Good morning! How are you today?",
    ] * 20
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tk.train_from_iterator(corpus, trainer=trainer)
    tok = Qwen2TokenizerFast(
        tokenizer_object=tk,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        add_prefix_space=False,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
    )
    tok.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    tok.add_special_tokens({"pad_token": "<|endoftext|>"})
    # TRAP: generate() slices input_ids[:, :3] == "<|im_start|>assistant\n" and [:, 3:-5] for the text,
    # so each of these must be exactly one token.
    for piece in ["<|im_start|>", "assistant", "\n", "<|im_end|>"]:
        ids = tok(piece, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, (piece, ids)
    ids = tok("<|im_start|>assistant\nHello there.<|im_end|>\n<|im_start|>assistant\n")["input_ids"]
    assert tok.convert_ids_to_tokens(ids[:3]) == ["<|im_start|>", "assistant", "Ċ"], tok.convert_ids_to_tokens(ids)
    assert len(tok) <= TEXT_VOCAB, len(tok)
    return tok


def build_speech_tokenizer(out_dir, seed):
    from qwen_tts.core import Qwen3TTSTokenizerV2Config, Qwen3TTSTokenizerV2Model
    from transformers import EncodecFeatureExtractor

    torch.manual_seed(seed)
    encoder_config = dict(  # MimiConfig (encoder only is used); 24 kHz, ratios 8*6*5*4 = 960 -> 25 Hz -> x2 -> 12.5 Hz
        sampling_rate=24000,
        frame_rate=12.5,
        audio_channels=1,
        hidden_size=32,
        num_filters=4,
        num_residual_layers=1,
        upsampling_ratios=[8, 6, 5, 4],
        kernel_size=7,
        last_kernel_size=3,
        residual_kernel_size=3,
        dilation_growth_rate=2,
        use_causal_conv=True,
        pad_mode="constant",
        compress=2,
        trim_right_ratio=1.0,
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=16,
        num_quantizers=NUM_CODE_GROUPS,
        use_conv_shortcut=False,
        vector_quantization_hidden_dimension=16,
        num_semantic_quantizers=1,
        upsample_groups=32,
        num_hidden_layers=1,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        hidden_act="gelu",
        max_position_embeddings=8000,
        sliding_window=250,
        use_cache=False,
        use_streaming=False,
    )
    decoder_config = dict(  # upsample 8*5*4*3 * 2*2 = 1920 samples/frame == decode_upsample_rate
        codebook_size=CODEBOOK_SIZE,
        codebook_dim=16,
        hidden_size=32,
        latent_dim=32,
        max_position_embeddings=8000,
        rope_theta=10000,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=16,
        attention_bias=False,
        sliding_window=72,
        intermediate_size=64,
        hidden_act="silu",
        layer_scale_initial_scale=0.01,
        rms_norm_eps=1e-5,
        num_hidden_layers=1,
        num_quantizers=NUM_CODE_GROUPS,
        upsample_rates=[8, 5, 4, 3],
        upsampling_ratios=[2, 2],
        decoder_dim=32,
        attention_dropout=0.0,
    )
    cfg = Qwen3TTSTokenizerV2Config(
        encoder_config=encoder_config,
        decoder_config=decoder_config,
        encoder_valid_num_quantizers=NUM_CODE_GROUPS,
        input_sample_rate=24000,
        output_sample_rate=24000,
        decode_upsample_rate=1920,
        encode_downsample_rate=1920,
    )
    model = Qwen3TTSTokenizerV2Model(cfg).eval()
    # TRAP (cosmetic): with the std=0.02 init the decoder output is ~1e-9 (silence) and its codebooks start at
    # embedding_sum=0. Randomize codebooks, use PyTorch default (kaiming) conv init, then scale the last conv
    # so decoded audio of random codes has std ~0.1.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("embedding_sum"):
                p.normal_(0.0, 1.0)
        for mod in model.decoder.modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                mod.reset_parameters()
                if mod.bias is not None:
                    mod.bias.zero_()  # biases otherwise give a code-independent, clipped DC pattern
        last = model.decoder.decoder[-1].conv
        last.bias.zero_()
        codes = torch.randint(0, CODEBOOK_SIZE, (1, NUM_CODE_GROUPS, 20))
        std = float(model.decoder(codes).std())
        last.weight.mul_(0.1 / max(std, 1e-12))
    model.save_pretrained(out_dir, safe_serialization=True)
    EncodecFeatureExtractor(
        feature_size=1,
        sampling_rate=24000,
        padding_value=0.0,
        chunk_length_s=None,
        overlap=None,
        padding_side="right",
        return_attention_mask=True,
    ).save_pretrained(out_dir)


def main_config(kind, tok, model_size):
    talker = dict(
        vocab_size=TALKER_VOCAB,
        hidden_size=TALKER_HIDDEN,
        intermediate_size=128,
        num_hidden_layers=TALKER_LAYERS,
        num_attention_heads=TALKER_HEADS,
        num_key_value_heads=TALKER_KV_HEADS,
        head_dim=HEAD_DIM,
        hidden_act="silu",
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_theta=1000000,
        attention_bias=False,
        attention_dropout=0.0,
        rope_scaling={"rope_type": "default", "type": "default", "mrope_section": MROPE_SECTION, "interleaved": True},
        num_code_groups=NUM_CODE_GROUPS,
        text_hidden_size=TEXT_HIDDEN,
        text_vocab_size=TEXT_VOCAB,
        position_id_per_seconds=13,
        codec_language_id=dict(LANGUAGES),
        spk_id=dict(SPEAKERS) if kind == "custom_voice" else {},
        spk_is_dialect=dict(SPK_DIALECT) if kind == "custom_voice" else {},
        code_predictor_config=dict(
            vocab_size=CODEBOOK_SIZE,
            hidden_size=CP_HIDDEN,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            hidden_act="silu",
            max_position_embeddings=65536,
            rms_norm_eps=1e-6,
            rope_theta=1000000,
            attention_bias=False,
            num_code_groups=NUM_CODE_GROUPS,
        ),
        **CODEC_IDS,
    )
    speaker_encoder = dict(  # TRAP: no model_type key (its __init__ has no **kwargs); mel_dim must stay 128
        mel_dim=128,
        enc_dim=TALKER_HIDDEN,
        enc_channels=[32, 32, 32, 32, 96],
        enc_kernel_sizes=[5, 3, 3, 3, 1],
        enc_dilations=[1, 2, 3, 4, 1],
        enc_attention_channels=16,
        enc_res2net_scale=4,
        enc_se_channels=16,
        sample_rate=24000,
    )
    ids = tok.convert_tokens_to_ids
    return dict(
        architectures=["Qwen3TTSForConditionalGeneration"],
        model_type="qwen3_tts",
        talker_config=talker,
        speaker_encoder_config=speaker_encoder,
        tokenizer_type="qwen3_tts_tokenizer_12hz",
        tts_model_size=model_size,
        tts_model_type=kind,
        im_start_token_id=ids("<|im_start|>"),
        im_end_token_id=ids("<|im_end|>"),
        tts_pad_token_id=ids("<tts_pad>"),
        tts_bos_token_id=ids("<tts_text_bos>"),
        tts_eos_token_id=ids("<tts_text_eod>"),
        torch_dtype="float32",
        transformers_version="4.57.3",
    )


GENERATION_CONFIG = dict(
    do_sample=True,
    repetition_penalty=1.05,
    temperature=0.9,
    top_p=1.0,
    top_k=50,
    subtalker_dosample=True,
    subtalker_temperature=0.9,
    subtalker_top_p=1.0,
    subtalker_top_k=50,
    max_new_tokens=8192,
)


def build_one(out_dir, kind, seed=0, model_size="0b6"):
    from qwen_tts.core.models import Qwen3TTSConfig, Qwen3TTSForConditionalGeneration

    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    tok = build_text_tokenizer()
    cfg_dict = main_config(kind, tok, model_size)
    torch.manual_seed(seed)
    cfg = Qwen3TTSConfig(**{k: v for k, v in cfg_dict.items() if k not in ("model_type", "architectures")})
    model = Qwen3TTSForConditionalGeneration(cfg).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    # TRAP: save_pretrained's config.json puts model_type etc. into speaker_encoder_config, which
    # Qwen3TTSSpeakerEncoderConfig.__init__ rejects -> overwrite with the hand-written dict.
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
    with open(os.path.join(out_dir, "generation_config.json"), "w") as f:
        json.dump(GENERATION_CONFIG, f, indent=2)
    tok.save_pretrained(out_dir)
    build_speech_tokenizer(os.path.join(out_dir, "speech_tokenizer"), seed + 1)
    return out_dir


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("out_root")
    ap.add_argument("--kind", choices=["custom_voice", "base", "voice_design", "both"], default="both")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model-size", default="0b6", help='"0b6" disables instruct in generate_custom_voice')
    a = ap.parse_args(argv)
    kinds = ["custom_voice", "base"] if a.kind == "both" else [a.kind]
    names = {"custom_voice": "tiny-12hz-customvoice", "base": "tiny-12hz-base", "voice_design": "tiny-12hz-voicedesign"}
    for k in kinds:
        d = build_one(os.path.join(a.out_root, names[k]), k, a.seed, a.model_size)
        print(d)


if __name__ == "__main__":
    main()
