"""Tests of securechat.crypto: known answers, tamper, bad input and hypothesis properties."""
