"""What every JSON format shares: strict decoding, duplicate keys, arrays cut into pieces."""
