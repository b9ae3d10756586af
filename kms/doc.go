// Package kms owns cowvol's key management: key-encryption keys ("KMS
// keys", named by ARN arn:aws:kms:<region>:<account>:key/<uuid> and by
// alias/<name>) that wrap and unwrap the per-volume data keys, and never
// leave the key manager themselves.
//
// Local is the key manager the daemon runs by default: a keyring directory
// it owns (0700, one file per key, 0600). As ssh and sudo check their
// files, OpenLocal trusts only what root or the daemon's euid owns: the
// keyring, every key file, and every directory and symlink on the way to
// the keyring, none of those directories writable by group or others
// unless sticky (trust.go). The engine sees only the small
// interface it defines where it uses keys, so an external KMS can replace
// the local keyring without touching it.
//
// A data key is wrapped with AES-256-GCM under the KMS key, the key's ARN
// bound in as additional data: a wrapped key names the KMS key that can
// unwrap it, a disabled or deleted KMS key makes it unusable (ErrKeyDisabled,
// ErrKeyNotFound), and a wrapped key that was altered fails to unwrap
// (ErrInvalidCiphertext) rather than yielding a wrong key.
package kms
