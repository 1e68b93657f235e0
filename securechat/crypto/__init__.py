"""Client-side end-to-end encryption: PQXDH-style handshake, Double Ratchet, keystore, trust.

Pure, synchronous code on top of ``cryptography``; it never touches the network or storage
drivers. The client talks to :class:`securechat.crypto.account.CryptoAccount`; the server only
calls the prekey verification functions in :mod:`securechat.crypto.prekeys`.
"""
