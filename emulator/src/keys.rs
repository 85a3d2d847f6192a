//! The emulator's token-signing key (RS256) for id_tokens, and the JWKS document that publishes
//! it.
//!
//! The key is a fixed 2048-bit RSA test key generated for this emulator. It signs nothing but
//! emulator id_tokens and must never be trusted anywhere else.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{Value, json};

/// Key id published in the JWKS and put in every id_token header.
pub const KEY_ID: &str = "emulator-rs256-1";

/// PKCS#8 DER of the test key, base64.
const TEST_KEY_PKCS8_B64: &str = concat!(
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDHLBqxPv7oGE83zp0LF1qMkPhc",
    "sOdL33ZpgptNKiTm+DPpghVYIGoWPAqxX+yKMXIkSnU1pYGB8hwxkBndxbj89/8LalwakSYaQzFi",
    "cQlkpEPuV9uqeF7TmWS0C90xnF/DeyRIufoDebDM0/dpJrh0DVSxbEdsVVmMffLpwSBYOJolJyi+",
    "Y16QVUEO5WM7IoNVCpBwW20qaGFHBEgV2mFPqQ4YIZyBMSsvyUdeP1tkAQMlcK2FvkGkKW5WM3ER",
    "5Z8nzxlv1ATwOn/MtYhpeIbt1f/kwniD/w/1qJI5Y1ddPTAU4uejxK5nbmHZw7fczVmv70SF1oeY",
    "cscGdwhOJOVLAgMBAAECggEAJWMEB615j/uwMxuXoxNZLfWwiUWzxSxHP/sCR/PXRXvl0rlWZFqB",
    "T3cp0q3c6vvpHyLS6aUNsGTQIgWYtWZ+GQ48U9o9O8dvTZK7XG03hCrJjZ30YAWEV1f97UYk2UEv",
    "QLSG1RgD9E8NfwVy9cwM58vwz/UxWwaSbqrdxD86YRS5tdQ3CCo8nZIyBhQMb78WGmObTzgvyupy",
    "6oD1wc+StGF+9WBMheLhru4Tmytv41KJ0WjpqJMaBmlreL+6+6nEYRceUMFRCIH9jHwBlgRuEMwD",
    "YsiSq3NgOBSiAJeJ041+dqSyGZB365NxauD+3/1ZgH24oQGHQcWpoCGyY+e7EQKBgQD5zqoi9wbI",
    "LaGfo/mxrNddC+g9+xGSxuUKQrlXUsGbg+MS8uXLb1ywEVcSRGaaH1vA6M+61+kUZjZhbZyOQAzS",
    "E6YRjqGSwcfu7sZXL/ocB28bn1WqggRpwNNtJGeULDTEtbuKBw2/l8VMz8qzx8ptYFPGheWLtc2p",
    "fRfmyuohDwKBgQDMHBkeU4JHOtBF5CfykcIEaySeECoI8A5ksI6w8Zly2YuPtUBwQml8nwNSlUSG",
    "3EwWKcKN2KSi3jyYFG5avMWdHZOhSnW1Bo4TNWK50YdShvejvqmp1xGWnEfDNaoDeHc1o21FQm48",
    "GOHJ3i5AiMqfcYsSJi+oNB3IOK+clsnABQKBgGXGsoCuXl/+X2QYPaoK/m+VY1ilSwKe8EAe8T5H",
    "pEPFFyXoOoGI7J17Yxs5LQhMEGjnMYMxZm/+ONe2/dri85Y/lSCAGQoe02NgewSYsnDrAnShlRh0",
    "AnJHspw8ActXu2QNmsvgldRidGsYGcDnfGzVmyw970jdmF4ebjeEoqE3AoGBAKzMIOvOsR2Sih6R",
    "cMxoX8QT3RVABAY7DURrQPJGJ63WxNNuFFa1ss6BZHO20SQHPxcIVaB2x7LmyI/LxD1nUTmZf5Fu",
    "E0alfQSADsvXumPAxchHsyWJYWeLeSmntf5oLywm5mxbOC4CtqyLP8b8x+XCX4WG9JPHQ2ttqia8",
    "daLtAoGAdcCvg3uO/XBdLNda901qXPdKW3cyvPQ1JWv9dX4lI8TYe4r9A5VLhu1RxIBFyCH+cF90",
    "F857z+IF6Y2pmaJ5gOoKdrUuPg7++9ua7lilD2CkKUBDqtyJzO7dL9s583mbT6DwNYWCPrHRGzlu",
    "6lTdgNV708o8bQ4LJhrVvLC0SOc=",
);

/// RS256 signer.
pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("kid", &KEY_ID)
            .finish_non_exhaustive()
    }
}

impl Default for Signer {
    fn default() -> Self {
        let der = STANDARD
            .decode(TEST_KEY_PKCS8_B64)
            .expect("embedded key is valid base64");
        let key = RsaKeyPair::from_pkcs8(&der).expect("embedded key is a valid RSA PKCS#8 key");
        Signer {
            key,
            rng: SystemRandom::new(),
        }
    }
}

impl Signer {
    /// A compact JWS (`header.payload.signature`) over `claims`.
    pub fn sign_jwt(&self, claims: &Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": KEY_ID});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &self.rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .expect("RSA signing cannot fail with a valid key");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The JWKS document (`{"keys":[...]}`) with the public key.
    pub fn jwks(&self, issuer: &str) -> Value {
        let parts: RsaPublicKeyComponents<Vec<u8>> = self.key.public().into();
        json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": KEY_ID,
                "n": URL_SAFE_NO_PAD.encode(&parts.n),
                "e": URL_SAFE_NO_PAD.encode(&parts.e),
                "issuer": issuer,
            }]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_with_published_key() {
        let s = Signer::default();
        let jwt = s.sign_jwt(&json!({"sub": "x"}));
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let jwks = s.jwks("iss");
        let n = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["n"].as_str().unwrap())
            .unwrap();
        let e = URL_SAFE_NO_PAD
            .decode(jwks["keys"][0]["e"].as_str().unwrap())
            .unwrap();
        let public = RsaPublicKeyComponents { n, e };
        public
            .verify(
                &signature::RSA_PKCS1_2048_8192_SHA256,
                input.as_bytes(),
                &URL_SAFE_NO_PAD.decode(sig).unwrap(),
            )
            .unwrap();
    }
}
