"""DNS responder: answers Consul-style queries from the daemon's catalog snapshots.

Pure core: `zone` (snapshot -> immutable Zone), `answer` (zone, question -> structured reply),
`wire` (parse queries, pack replies), `wire_cache` (packed replies per zone). I/O shell: `server`.
Only this package imports dnslib.
"""

from registrator.dns.config import DnsConfig
from registrator.dns.server import DnsServer, serve_dns

__all__ = ["DnsConfig", "DnsServer", "serve_dns"]
