//! Encoding, hashing and crypto methods: `encode`/`decode` (base64, base32, hex,
//! ascii85), `hash` (SHA, MD5, CRC32, HMAC), `compress`/`decompress`, AES, bcrypt/argon2
//! comparison, and JWT parsing/signing.

use std::io::{Read, Write};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::ast::{Call, MethodFn};
use super::eval::{Ctx, R};
use super::methods::{any_bytes, as_bytes, as_str, opt, opt_i64, req, req_str};
use crate::message::Value;

pub fn lookup(name: &str) -> Option<MethodFn> {
    Some(match name {
        "encode" => encode,
        "decode" => decode,
        "hash" => hash,
        "compress" => compress,
        "decompress" => decompress,
        "encrypt_aes" => |c, v, call| aes(c, v, call, true),
        "decrypt_aes" => |c, v, call| aes(c, v, call, false),
        "compare_bcrypt" => |c, v, call| {
            let secret = as_bytes(c, v)?;
            let h = req_str(c, call, 0, "hashed_secret")?;
            Ok(Value::Bool(bcrypt::verify(secret, h).unwrap_or(false)))
        },
        "compare_argon2" => compare_argon2,
        "parse_jwt_hs256" => |c, v, call| parse_jwt(c, v, call, "HS256"),
        "parse_jwt_hs384" => |c, v, call| parse_jwt(c, v, call, "HS384"),
        "parse_jwt_hs512" => |c, v, call| parse_jwt(c, v, call, "HS512"),
        "parse_jwt_rs256" => |c, v, call| parse_jwt(c, v, call, "RS256"),
        "parse_jwt_rs384" => |c, v, call| parse_jwt(c, v, call, "RS384"),
        "parse_jwt_rs512" => |c, v, call| parse_jwt(c, v, call, "RS512"),
        "parse_jwt_es256" => |c, v, call| parse_jwt(c, v, call, "ES256"),
        "parse_jwt_es384" => |c, v, call| parse_jwt(c, v, call, "ES384"),
        "parse_jwt_es512" => |c, v, call| parse_jwt(c, v, call, "ES512"),
        "sign_jwt_hs256" => |c, v, call| sign_jwt(c, v, call, "HS256"),
        "sign_jwt_hs384" => |c, v, call| sign_jwt(c, v, call, "HS384"),
        "sign_jwt_hs512" => |c, v, call| sign_jwt(c, v, call, "HS512"),
        "sign_jwt_rs256" => |c, v, call| sign_jwt(c, v, call, "RS256"),
        "sign_jwt_rs384" => |c, v, call| sign_jwt(c, v, call, "RS384"),
        "sign_jwt_rs512" => |c, v, call| sign_jwt(c, v, call, "RS512"),
        "sign_jwt_es256" => |c, v, call| sign_jwt(c, v, call, "ES256"),
        "sign_jwt_es384" => |c, v, call| sign_jwt(c, v, call, "ES384"),
        "sign_jwt_es512" => |c, v, call| sign_jwt(c, v, call, "ES512"),
        _ => return None,
    })
}

fn bytes_out<'a>(ctx: &Ctx<'a, '_>, b: &[u8]) -> Value<'a> {
    Value::Bytes(ctx.arena.alloc_slice_copy(b))
}

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B32HEX: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";

fn base32_encode(data: &[u8], alpha: &[u8; 32]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(alpha[((n >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base32_decode(s: &str, alpha: &[u8; 32]) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut bits = 0u64;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = alpha.iter().position(|&a| a == c)? as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    Some(out)
}

/// Go's `encoding/ascii85` (no delimiters, `z` for all-zero groups).
fn ascii85_encode(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(4) {
        let mut buf = [0u8; 4];
        buf[..chunk.len()].copy_from_slice(chunk);
        let mut n = u32::from_be_bytes(buf);
        if n == 0 && chunk.len() == 4 {
            out.push('z');
            continue;
        }
        let mut digits = [0u8; 5];
        for d in digits.iter_mut().rev() {
            *d = (n % 85) as u8 + b'!';
            n /= 85;
        }
        for d in &digits[..chunk.len() + 1] {
            out.push(*d as char);
        }
    }
    out
}

fn ascii85_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    let s = s.strip_prefix("<~").unwrap_or(s);
    let s = s.strip_suffix("~>").unwrap_or(s);
    let mut out = Vec::new();
    let mut group = Vec::with_capacity(5);
    for c in s.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'z' && group.is_empty() {
            out.extend_from_slice(&[0, 0, 0, 0]);
            continue;
        }
        if !(b'!'..=b'u').contains(&c) {
            return None;
        }
        group.push(c - b'!');
        if group.len() == 5 {
            let n = group.iter().fold(0u64, |acc, &d| acc * 85 + d as u64);
            out.extend_from_slice(&(n as u32).to_be_bytes());
            group.clear();
        }
    }
    if !group.is_empty() {
        let len = group.len();
        while group.len() < 5 {
            group.push(84);
        }
        let n = group.iter().fold(0u64, |acc, &d| acc * 85 + d as u64);
        out.extend_from_slice(&(n as u32).to_be_bytes()[..len - 1]);
    }
    Some(out)
}

fn encode<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let data = any_bytes(ctx, v);
    let scheme = req_str(ctx, call, 0, "scheme")?;
    let s = match scheme {
        "base64" => base64::engine::general_purpose::STANDARD.encode(data),
        "base64url" => base64::engine::general_purpose::URL_SAFE.encode(data),
        "base64rawurl" => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data),
        "base64raw" => base64::engine::general_purpose::STANDARD_NO_PAD.encode(data),
        "hex" => hex::encode(data),
        "ascii85" => ascii85_encode(data),
        "base32" => base32_encode(data, B32),
        "base32hex" => base32_encode(data, B32HEX),
        other => return ctx.fail(&format!("unrecognized encoding type: {other}")),
    };
    Ok(ctx.str(&s))
}

fn decode<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let data = any_bytes(ctx, v);
    let scheme = req_str(ctx, call, 0, "scheme")?;
    let text = String::from_utf8_lossy(data);
    let out: Result<Vec<u8>, String> = match scheme {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| e.to_string()),
        "base64url" => base64::engine::general_purpose::URL_SAFE
            .decode(data)
            .map_err(|e| e.to_string()),
        "base64rawurl" => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|e| e.to_string()),
        "base64raw" => base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(data)
            .map_err(|e| e.to_string()),
        "hex" => hex::decode(data).map_err(|e| format!("encoding/hex: {e}")),
        "ascii85" => ascii85_decode(&text).ok_or_else(|| "illegal ascii85 data".to_string()),
        "base32" => base32_decode(&text, B32).ok_or_else(|| "illegal base32 data".to_string()),
        "base32hex" => {
            base32_decode(&text, B32HEX).ok_or_else(|| "illegal base32 data".to_string())
        }
        other => Err(format!("unrecognized encoding type: {other}")),
    };
    match out {
        Ok(b) => Ok(bytes_out(ctx, &b)),
        Err(e) => ctx.fail(&e),
    }
}

/// Table-driven reflected CRC-32 for any polynomial (IEEE, Castagnoli, Koopman).
fn crc32(poly: u32, data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { poly ^ (c >> 1) } else { c >> 1 };
        }
        *slot = c;
    }
    let mut crc = !0u32;
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

fn hmac_of<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn hash<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let data = any_bytes(ctx, v);
    let algo = req_str(ctx, call, 0, "algorithm")?;
    let key = opt(ctx, call, 1, "key")?.map(|k| any_bytes(ctx, k));
    let need_key = || key.ok_or_else(|| ctx.err("missing parameter: key"));
    let out: Vec<u8> = match algo {
        "sha1" => Sha1::digest(data).to_vec(),
        "sha256" => Sha256::digest(data).to_vec(),
        "sha384" => Sha384::digest(data).to_vec(),
        "sha512" => Sha512::digest(data).to_vec(),
        "md5" => md5::Md5::digest(data).to_vec(),
        "hmac_sha1" => hmac_of::<Hmac<Sha1>>(need_key()?, data),
        "hmac_sha256" => hmac_of::<Hmac<Sha256>>(need_key()?, data),
        "hmac_sha512" => hmac_of::<Hmac<Sha512>>(need_key()?, data),
        "hmac_md5" => hmac_of::<Hmac<md5::Md5>>(need_key()?, data),
        "crc32" => {
            let poly = match super::methods::opt_str(ctx, call, 2, "polynomial")?.unwrap_or("IEEE")
            {
                "IEEE" => 0xedb88320,
                "Castagnoli" => 0x82f63b78,
                "Koopman" => 0xeb31d82e,
                other => return ctx.fail(&format!("unsupported crc32 polynomial: {other}")),
            };
            crc32(poly, data).to_be_bytes().to_vec()
        }
        "fnv32" | "fnv32a" | "fnv64" | "fnv64a" => fnv(algo, data),
        "xxhash64" => twox_hash::XxHash64::oneshot(0, data).to_be_bytes().to_vec(),
        other => return ctx.fail(&format!("unrecognized hash type: {other}")),
    };
    Ok(bytes_out(ctx, &out))
}

fn fnv(algo: &str, data: &[u8]) -> Vec<u8> {
    if algo.starts_with("fnv32") {
        let mut h: u32 = 0x811c9dc5;
        for &b in data {
            if algo == "fnv32a" {
                h ^= b as u32;
                h = h.wrapping_mul(0x01000193);
            } else {
                h = h.wrapping_mul(0x01000193);
                h ^= b as u32;
            }
        }
        h.to_be_bytes().to_vec()
    } else {
        let mut h: u64 = 0xcbf29ce484222325;
        for &b in data {
            if algo == "fnv64a" {
                h ^= b as u64;
                h = h.wrapping_mul(0x100000001b3);
            } else {
                h = h.wrapping_mul(0x100000001b3);
                h ^= b as u64;
            }
        }
        h.to_be_bytes().to_vec()
    }
}

fn compress<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let data = any_bytes(ctx, v);
    let algo = req_str(ctx, call, 0, "algorithm")?;
    let level = opt_i64(ctx, call, 1, "level")?.unwrap_or(-1);
    let lvl = if level < 0 {
        flate2::Compression::default()
    } else {
        flate2::Compression::new(level.min(9) as u32)
    };
    let out: std::io::Result<Vec<u8>> = match algo {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), lvl);
            e.write_all(data).and_then(|_| e.finish())
        }
        "zlib" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), lvl);
            e.write_all(data).and_then(|_| e.finish())
        }
        "flate" => {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), lvl);
            e.write_all(data).and_then(|_| e.finish())
        }
        "snappy" => snap::raw::Encoder::new()
            .compress_vec(data)
            .map_err(std::io::Error::other),
        "lz4" => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data)
                .map_err(std::io::Error::other)
                .and_then(|_| e.finish().map_err(std::io::Error::other))
        }
        other => return ctx.fail(&format!("unrecognised compression algorithm: {other}")),
    };
    match out {
        Ok(b) => Ok(bytes_out(ctx, &b)),
        Err(e) => ctx.fail(&e.to_string()),
    }
}

fn decompress<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    let data = any_bytes(ctx, v);
    let algo = req_str(ctx, call, 0, "algorithm")?;
    let mut out = Vec::new();
    let r = match algo {
        "gzip" => flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out),
        "zlib" => flate2::read::ZlibDecoder::new(data).read_to_end(&mut out),
        "flate" => flate2::read::DeflateDecoder::new(data).read_to_end(&mut out),
        "snappy" => snap::raw::Decoder::new()
            .decompress_vec(data)
            .map(|d| {
                out = d;
                0
            })
            .map_err(std::io::Error::other),
        "lz4" => lz4_flex::frame::FrameDecoder::new(data).read_to_end(&mut out),
        other => return ctx.fail(&format!("unrecognised compression algorithm: {other}")),
    };
    match r {
        Ok(_) => Ok(bytes_out(ctx, &out)),
        Err(e) => ctx.fail(&e.to_string()),
    }
}

fn aes<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call, encrypt: bool) -> R<'a> {
    use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, StreamCipher};
    let data = any_bytes(ctx, v);
    let scheme = req_str(ctx, call, 0, "scheme")?;
    let key = any_bytes(ctx, req(ctx, call, 1, "key")?);
    let iv = any_bytes(ctx, req(ctx, call, 2, "iv")?);
    let mut buf = data.to_vec();
    macro_rules! stream {
        ($mode:ident) => {{
            let r = match key.len() {
                16 => $mode::<aes::Aes128>::new_from_slices(key, iv)
                    .map(|mut c| c.apply_keystream(&mut buf)),
                24 => $mode::<aes::Aes192>::new_from_slices(key, iv)
                    .map(|mut c| c.apply_keystream(&mut buf)),
                32 => $mode::<aes::Aes256>::new_from_slices(key, iv)
                    .map(|mut c| c.apply_keystream(&mut buf)),
                n => return ctx.fail(&format!("crypto/aes: invalid key size {n}")),
            };
            r.map_err(|e| ctx.err(&e.to_string()))?;
        }};
    }
    type Ctr<C> = ctr::Ctr128BE<C>;
    type Ofb<C> = ofb::Ofb<C>;
    match scheme {
        "ctr" => stream!(Ctr),
        "ofb" => stream!(Ofb),
        "gcm" => {
            use aes_gcm::aead::{Aead, KeyInit};
            macro_rules! gcm_run {
                ($c:ty) => {{
                    if iv.len() != 12 {
                        return ctx.fail("crypto/cipher: incorrect nonce length given to GCM");
                    }
                    let cipher =
                        aes_gcm::AesGcm::<$c, aes_gcm::aead::consts::U12>::new_from_slice(key)
                            .map_err(|e| ctx.err(&e.to_string()))?;
                    let nonce = aes_gcm::Nonce::from_slice(iv);
                    buf = if encrypt {
                        cipher.encrypt(nonce, buf.as_slice())
                    } else {
                        cipher.decrypt(nonce, buf.as_slice())
                    }
                    .map_err(|_| ctx.err("cipher: message authentication failed"))?;
                }};
            }
            match key.len() {
                16 => gcm_run!(aes::Aes128),
                24 => gcm_run!(aes::Aes192),
                32 => gcm_run!(aes::Aes256),
                n => return ctx.fail(&format!("crypto/aes: invalid key size {n}")),
            }
        }
        "cbc" => {
            if buf.len() % 16 != 0 {
                return ctx.fail("plaintext is not a multiple of the block size");
            }
            let n = buf.len();
            macro_rules! cbc_run {
                ($c:ty) => {{
                    if encrypt {
                        cbc::Encryptor::<$c>::new_from_slices(key, iv)
                            .map_err(|e| ctx.err(&e.to_string()))?
                            .encrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(
                                &mut buf, n,
                            )
                            .map(|_| ())
                            .map_err(|e| ctx.err(&e.to_string()))?;
                    } else {
                        cbc::Decryptor::<$c>::new_from_slices(key, iv)
                            .map_err(|e| ctx.err(&e.to_string()))?
                            .decrypt_padded_mut::<aes::cipher::block_padding::NoPadding>(&mut buf)
                            .map(|_| ())
                            .map_err(|e| ctx.err(&e.to_string()))?;
                    }
                }};
            }
            match key.len() {
                16 => cbc_run!(aes::Aes128),
                24 => cbc_run!(aes::Aes192),
                32 => cbc_run!(aes::Aes256),
                n => return ctx.fail(&format!("crypto/aes: invalid key size {n}")),
            }
        }
        other => return ctx.fail(&format!("unrecognized cipher scheme: {other}")),
    }
    Ok(bytes_out(ctx, &buf))
}

fn compare_argon2<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call) -> R<'a> {
    use argon2::PasswordVerifier;
    let secret = as_bytes(ctx, v)?;
    let h = req_str(ctx, call, 0, "hashed_secret")?;
    let parsed =
        argon2::PasswordHash::new(h).map_err(|e| ctx.err(&format!("failed to parse hash: {e}")))?;
    Ok(Value::Bool(
        argon2::Argon2::default()
            .verify_password(secret, &parsed)
            .is_ok(),
    ))
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

fn verify_jwt(alg: &str, key: &str, signing_input: &[u8], sig: &[u8]) -> Result<(), String> {
    use p256::ecdsa::signature::Verifier;
    use rsa::pkcs8::DecodePublicKey;
    let bad = |e: &dyn std::fmt::Display| e.to_string();
    match alg {
        "HS256" | "HS384" | "HS512" => {
            let mac = match alg {
                "HS256" => hmac_of::<Hmac<Sha256>>(key.as_bytes(), signing_input),
                "HS384" => hmac_of::<Hmac<Sha384>>(key.as_bytes(), signing_input),
                _ => hmac_of::<Hmac<Sha512>>(key.as_bytes(), signing_input),
            };
            if mac == sig {
                Ok(())
            } else {
                Err("signature is invalid".into())
            }
        }
        "RS256" | "RS384" | "RS512" => {
            let pk = rsa::RsaPublicKey::from_public_key_pem(key)
                .or_else(|_| {
                    use rsa::pkcs1::DecodeRsaPublicKey;
                    rsa::RsaPublicKey::from_pkcs1_pem(key)
                })
                .map_err(|e| bad(&e))?;
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| bad(&e))?;
            match alg {
                "RS256" => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk).verify(signing_input, &s),
                "RS384" => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(pk).verify(signing_input, &s),
                _ => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(pk).verify(signing_input, &s),
            }
            .map_err(|_| "crypto/rsa: verification error".to_string())
        }
        "ES256" => {
            let vk = p256::ecdsa::VerifyingKey::from_public_key_pem(key).map_err(|e| bad(&e))?;
            let s = p256::ecdsa::Signature::from_slice(sig).map_err(|e| bad(&e))?;
            vk.verify(signing_input, &s).map_err(|e| bad(&e))
        }
        "ES384" => {
            let vk = p384::ecdsa::VerifyingKey::from_public_key_pem(key).map_err(|e| bad(&e))?;
            let s = p384::ecdsa::Signature::from_slice(sig).map_err(|e| bad(&e))?;
            vk.verify(signing_input, &s).map_err(|e| bad(&e))
        }
        "ES512" => {
            let pk = p521::PublicKey::from_public_key_pem(key).map_err(|e| bad(&e))?;
            let vk = p521::ecdsa::VerifyingKey::from_sec1_bytes(&pk.to_sec1_bytes())
                .map_err(|e| bad(&e))?;
            let s = p521::ecdsa::Signature::from_slice(sig).map_err(|e| bad(&e))?;
            vk.verify(signing_input, &s).map_err(|e| bad(&e))
        }
        other => Err(format!("unsupported algorithm {other}")),
    }
}

fn parse_jwt<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call, alg: &str) -> R<'a> {
    let token = as_str(ctx, v)?;
    let key = req_str(ctx, call, 0, "signing_secret")?;
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return ctx
            .fail("failed to parse JWT string: token contains an invalid number of segments");
    }
    let header = b64url(parts[0]).ok_or_else(|| ctx.err("failed to parse JWT header"))?;
    let header = super::json::parse(ctx.arena, ctx.arena.alloc_slice_copy(&header))
        .map_err(|e| ctx.err(&format!("failed to parse JWT header: {e}")))?;
    let got_alg = super::eval::get_field(header, "alg");
    if got_alg != Value::Str(alg) {
        return ctx.fail(&format!(
            "failed to parse JWT string: token signature is invalid: signing method {} is invalid",
            super::eval::to_text(ctx.arena, &got_alg)
        ));
    }
    let sig = b64url(parts[2]).ok_or_else(|| ctx.err("failed to decode JWT signature"))?;
    let input = &token[..parts[0].len() + 1 + parts[1].len()];
    verify_jwt(alg, key, input.as_bytes(), &sig).map_err(|e| {
        ctx.err(&format!(
            "failed to parse JWT string: token signature is invalid: {e}"
        ))
    })?;
    let claims = b64url(parts[1]).ok_or_else(|| ctx.err("failed to decode JWT claims"))?;
    super::json::parse(ctx.arena, ctx.arena.alloc_slice_copy(&claims))
        .map_err(|e| ctx.err(&format!("failed to parse JWT claims: {e}")))
}

fn jwt_signature(alg: &str, key: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    use p256::ecdsa::signature::{SignatureEncoding, Signer};
    use p256::pkcs8::DecodePrivateKey;
    let bad = |e: &dyn std::fmt::Display| e.to_string();
    Ok(match alg {
        "HS256" => hmac_of::<Hmac<Sha256>>(key.as_bytes(), input),
        "HS384" => hmac_of::<Hmac<Sha384>>(key.as_bytes(), input),
        "HS512" => hmac_of::<Hmac<Sha512>>(key.as_bytes(), input),
        "RS256" | "RS384" | "RS512" => {
            let pk = rsa::RsaPrivateKey::from_pkcs8_pem(key)
                .or_else(|_| {
                    use rsa::pkcs1::DecodeRsaPrivateKey;
                    rsa::RsaPrivateKey::from_pkcs1_pem(key)
                })
                .map_err(|e| bad(&e))?;
            match alg {
                "RS256" => rsa::pkcs1v15::SigningKey::<Sha256>::new(pk)
                    .sign(input)
                    .to_vec(),
                "RS384" => rsa::pkcs1v15::SigningKey::<Sha384>::new(pk)
                    .sign(input)
                    .to_vec(),
                _ => rsa::pkcs1v15::SigningKey::<Sha512>::new(pk)
                    .sign(input)
                    .to_vec(),
            }
        }
        "ES256" => {
            let sk = p256::SecretKey::from_pkcs8_pem(key)
                .or_else(|_| p256::SecretKey::from_sec1_pem(key))
                .map_err(|e| bad(&e))?;
            let sig: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(sk).sign(input);
            sig.to_bytes().to_vec()
        }
        "ES384" => {
            let sk = p384::SecretKey::from_pkcs8_pem(key)
                .or_else(|_| p384::SecretKey::from_sec1_pem(key))
                .map_err(|e| bad(&e))?;
            let sig: p384::ecdsa::Signature = p384::ecdsa::SigningKey::from(sk).sign(input);
            sig.to_bytes().to_vec()
        }
        "ES512" => {
            let sk = p521::SecretKey::from_pkcs8_pem(key)
                .or_else(|_| p521::SecretKey::from_sec1_pem(key))
                .map_err(|e| bad(&e))?;
            let signer =
                p521::ecdsa::SigningKey::from_bytes(&sk.to_bytes()).map_err(|e| bad(&e))?;
            let sig: p521::ecdsa::Signature = signer.sign(input);
            sig.to_bytes().to_vec()
        }
        other => return Err(format!("unsupported algorithm {other}")),
    })
}

fn sign_jwt<'a>(ctx: &Ctx<'a, '_>, v: Value<'a>, call: &Call, alg: &str) -> R<'a> {
    let key = req_str(ctx, call, 0, "signing_secret")?;
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let base = ctx.arena.alloc_slice_copy(&[
        ("alg", Value::Str(ctx.arena.alloc_str(alg))),
        ("typ", Value::Str("JWT")),
    ]);
    let mut header = Value::Object(base);
    if let Some(extra) = opt(ctx, call, 1, "headers")? {
        header = super::methods_collections::merge(ctx, header, extra, true);
    }
    let mut hb = bumpalo::collections::Vec::new_in(ctx.arena);
    crate::message::write_json(&header, &mut hb);
    let mut cb = bumpalo::collections::Vec::new_in(ctx.arena);
    crate::message::write_json(&v, &mut cb);
    let input = format!("{}.{}", enc(&hb), enc(&cb));
    let sig = jwt_signature(alg, key, input.as_bytes())
        .map_err(|e| ctx.err(&format!("failed to sign JWT: {e}")))?;
    Ok(ctx.str(&format!("{input}.{}", enc(&sig))))
}

#[cfg(test)]
mod tests {
    use super::super::test_eval as eval;
    use super::*;

    #[test]
    fn encodings_roundtrip() {
        for scheme in [
            "base64",
            "base64url",
            "base64rawurl",
            "hex",
            "ascii85",
            "base32",
            "base32hex",
        ] {
            let m = format!("root = this.encode(\"{scheme}\").decode(\"{scheme}\").string()");
            assert_eq!(
                eval(&m, "\"any text at all!\""),
                "any text at all!",
                "{scheme}"
            );
        }
        assert_eq!(base32_encode(b"f", B32), "MY======");
        assert_eq!(ascii85_encode(&[0, 0, 0, 0, 1]), "z!<");
    }

    #[test]
    fn hashes() {
        assert_eq!(
            eval("root = \"abc\".hash(\"sha256\").encode(\"hex\")", "{}"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            eval("root = \"abc\".hash(\"md5\").encode(\"hex\")", "{}"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            format!("{:08x}", crc32(0xedb88320, b"123456789")),
            "cbf43926"
        );
        assert_eq!(
            format!("{:08x}", crc32(0x82f63b78, b"123456789")),
            "e3069283"
        );
    }

    #[test]
    fn compression_and_aes_roundtrip() {
        for algo in ["gzip", "zlib", "flate", "snappy", "lz4"] {
            let m = format!("root = this.compress(\"{algo}\").decompress(\"{algo}\").string()");
            assert_eq!(
                eval(&m, "\"hello hello hello\""),
                "hello hello hello",
                "{algo}"
            );
        }
        let m = r#"let k = "000102030405060708090a0b0c0d0e0f".decode("hex")
root = this.encrypt_aes("cbc", $k, $k).decrypt_aes("cbc", $k, $k).string()"#;
        assert_eq!(eval(m, "\"sixteen byte msg\""), "sixteen byte msg");
        let g = r#"let k = "000102030405060708090a0b0c0d0e0f".decode("hex")
let n = "000102030405060708090a0b".decode("hex")
root = [this.encrypt_aes("gcm", $k, $n).length(), this.encrypt_aes("gcm", $k, $n).decrypt_aes("gcm", $k, $n).string()]"#;
        assert_eq!(eval(g, "\"abc\""), r#"[19,"abc"]"#);
        assert_eq!(
            eval("root = \"abc\".hash(\"xxhash64\").encode(\"hex\")", "{}"),
            "44bc2cf5ad770999"
        );
    }

    #[test]
    fn jwt_hs256_matches_known_token() {
        let m = r#"root = this.sign_jwt_hs256("dont-tell-anyone")"#;
        assert_eq!(
            eval(m, r#"{"sub":"user123"}"#),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyMTIzIn0.hUl-nngPMY_3h9vveWJUPsCcO5PeL6k9hWLnMYeFbFQ"
        );
    }

    #[test]
    fn jwt_es256_sign_then_verify() {
        use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
        let sk = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let priv_pem = sk.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let pub_pem = sk.public_key().to_public_key_pem(LineEnding::LF).unwrap();
        let m = format!("root = this.sign_jwt_es256(\"\"\"{priv_pem}\"\"\").parse_jwt_es256(\"\"\"{pub_pem}\"\"\")");
        assert_eq!(eval(&m, r#"{"sub":"x"}"#), r#"{"sub":"x"}"#);
    }

    #[test]
    fn jwt_sign_then_parse() {
        let m = r#"root = this.sign_jwt_hs256("k").parse_jwt_hs256("k")"#;
        assert_eq!(eval(m, r#"{"sub":"me"}"#), r#"{"sub":"me"}"#);
        let bad = r#"root = this.sign_jwt_hs256("k").parse_jwt_hs256("other")"#;
        assert!(eval(bad, r#"{"sub":"me"}"#).starts_with("ERR"));
    }
}
