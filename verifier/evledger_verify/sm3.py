"""Pure-Python SM3 (GB/T 32905-2016), the reference the numba kernels are held against.

Written for reading, not speed: each step names the clause of the standard it implements.
"""

IV = (0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600,
      0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E)  # §4.1
_MASK = 0xFFFFFFFF


def _rotl(x: int, n: int) -> int:
    n %= 32
    return ((x << n) | (x >> (32 - n))) & _MASK


def _p0(x: int) -> int:  # §4.4
    return x ^ _rotl(x, 9) ^ _rotl(x, 17)


def _p1(x: int) -> int:  # §4.4
    return x ^ _rotl(x, 15) ^ _rotl(x, 23)


def _pad(message: bytes) -> bytes:
    """§5.2: append bit 1, zeros to 448 mod 512 bits, then the 64-bit bit length."""
    bit_length = len(message) * 8
    padded = message + b"\x80" + b"\x00" * ((55 - len(message)) % 64)
    return padded + bit_length.to_bytes(8, "big")


def _compress(v: list[int], block: bytes) -> list[int]:
    """§5.3.2 message expansion and §5.3.3 compression function CF."""
    w = [int.from_bytes(block[i:i + 4], "big") for i in range(0, 64, 4)]
    for j in range(16, 68):
        w.append(_p1(w[j - 16] ^ w[j - 9] ^ _rotl(w[j - 3], 15)) ^ _rotl(w[j - 13], 7) ^ w[j - 6])
    w1 = [w[j] ^ w[j + 4] for j in range(64)]
    a, b, c, d, e, f, g, h = v
    for j in range(64):
        t = 0x79CC4519 if j < 16 else 0x7A879D8A
        ss1 = _rotl((_rotl(a, 12) + e + _rotl(t, j)) & _MASK, 7)
        ss2 = ss1 ^ _rotl(a, 12)
        if j < 16:
            ff, gg = a ^ b ^ c, e ^ f ^ g
        else:
            ff = (a & b) | (a & c) | (b & c)
            gg = (e & f) | (~e & g)
        tt1 = (ff + d + ss2 + w1[j]) & _MASK
        tt2 = (gg + h + ss1 + w[j]) & _MASK
        d, c, b, a = c, _rotl(b, 9), a, tt1
        h, g, f, e = g, _rotl(f, 19), e, _p0(tt2)
    return [x ^ y for x, y in zip(v, (a, b, c, d, e, f, g, h))]


def sm3_reference(message: bytes) -> bytes:
    """SM3 digest (32 bytes) of `message`."""
    v = list(IV)
    padded = _pad(bytes(message))
    for i in range(0, len(padded), 64):
        v = _compress(v, padded[i:i + 64])
    return b"".join(x.to_bytes(4, "big") for x in v)
