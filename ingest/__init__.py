"""HTTP in: routing, provider authentication, raw persistence, synchronous replies, outbox."""
