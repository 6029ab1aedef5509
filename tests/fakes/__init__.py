"""Fake CRMs: real HTTP servers on loopback that store what the destination modules write."""
