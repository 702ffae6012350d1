"""DKIM keys mailfleet owns: generated locally, stored under the secrets folder, imported into
every Mailcow host that signs for a domain, published once in DNS, rotated by selector."""
