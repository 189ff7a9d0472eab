"""The network state of the simulated machine, as data.

One ``NetStack`` per struct vnet (key: owner JID, 0 = vnet0): its interfaces
(``IfSpec`` with ``AddrSpec``\\ s), its sockets / pcbs (``SockSpec``, in
creation order) and a seed for its protocol statistics.  The builder
(network.py) lays these out through the DWARF; nothing here depends on the
kernel layout except the interface index rule (``index12`` = per-vnet index
of 12/13, ``index14`` = the global index of 14).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# net/if.h
IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_DEBUG = 0x4
IFF_LOOPBACK = 0x8
IFF_POINTOPOINT = 0x10
IFF_DRV_RUNNING = 0x40
IFF_NOARP = 0x80
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
IFF_SIMPLEX = 0x800
IFF_LINK0 = 0x1000
IFF_MULTICAST = 0x8000
IFF_FLAG_NAMES = [
    (IFF_UP, "UP"), (IFF_BROADCAST, "BROADCAST"), (IFF_DEBUG, "DEBUG"),
    (IFF_LOOPBACK, "LOOPBACK"), (IFF_POINTOPOINT, "POINTOPOINT"), (IFF_DRV_RUNNING, "RUNNING"),
    (IFF_NOARP, "NOARP"), (IFF_PROMISC, "PROMISC"), (IFF_ALLMULTI, "ALLMULTI"),
    (IFF_SIMPLEX, "SIMPLEX"), (IFF_MULTICAST, "MULTICAST"),
]
# net/if_types.h
IFT_ETHER = 0x6
IFT_LOOP = 0x18
LINK_STATE_UNKNOWN, LINK_STATE_DOWN, LINK_STATE_UP = 0, 1, 2

# netinet/tcp_fsm.h
TCP_STATES = ["CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT",
              "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT"]
TCPS = {n: i for i, n in enumerate(TCP_STATES)}
TCPS["SYN_RECEIVED"] = 3

IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_RAW = 255
IPPROTO_UDPLITE = 136

IFCOUNTER_NAMES = ["IFCOUNTER_IPACKETS", "IFCOUNTER_IERRORS", "IFCOUNTER_OPACKETS",
                   "IFCOUNTER_OERRORS", "IFCOUNTER_COLLISIONS", "IFCOUNTER_IBYTES",
                   "IFCOUNTER_OBYTES", "IFCOUNTER_IMCASTS", "IFCOUNTER_OMCASTS",
                   "IFCOUNTER_IQDROPS", "IFCOUNTER_OQDROPS", "IFCOUNTER_NOPROTO"]



#: Plausibility of the generated protocol statistics (network.py draws each counter
#: from the stack's ``stats_seed``): netstat -s prints lines derived from these
#: totals (udp "delivered" = received minus its drops, unsigned), so a "received"
#: counter is raised to at least the sum of the counters it includes.  Rules apply in
#: order (a part is settled before the whole that includes it); counters the
#: kernel's DWARF lacks count as 0.
STATS_INCLUDES = {
    "tcp": (("tcps_rcvtotal", ("tcps_rcvbadsum", "tcps_rcvbadoff", "tcps_rcvshort",
                               "tcps_rcvmemdrop", "tcps_rcvreassfull", "tcps_rcvafterclose",
                               "tcps_pawsdrop", "tcps_rcvduppack", "tcps_rcvpartduppack",
                               "tcps_rcvoopack", "tcps_rcvpackafterwin")),
            ("tcps_sndtotal", ("tcps_sndpack", "tcps_sndrexmitpack", "tcps_sndacks",
                               "tcps_sndprobe", "tcps_sndurg", "tcps_sndwinup",
                               "tcps_sndctrl"))),
    "udp": (("udps_noportbcast", ("udps_filtermcast",)),
            ("udps_ipackets", ("udps_hdrops", "udps_badlen", "udps_badsum", "udps_noport",
                               "udps_noportbcast", "udps_fullsock"))),
    "ip": (("ips_fragments", ("ips_fragdropped", "ips_fragtimeout")),
           ("ips_total", ("ips_badsum", "ips_toosmall", "ips_tooshort", "ips_toolong",
                          "ips_badhlen", "ips_badlen", "ips_badoptions", "ips_badvers",
                          "ips_fragments"))),
    "ip6": (("ip6s_fragments", ("ip6s_fragdropped", "ip6s_fragtimeout",
                                "ip6s_fragoverflow")),
            ("ip6s_total", ("ip6s_toosmall", "ip6s_tooshort", "ip6s_badoptions",
                            "ip6s_badvers", "ip6s_fragments", "ip6s_exthdrtoolong",
                            "ip6s_toomanyhdr", "ip6s_badscope"))),
}


def plausible_stats(key: str, totals: dict[str, int]) -> dict[str, int]:
    """``totals`` (field name -> generated total) with every including counter at least
    the sum of what it includes: a short one gets that sum added to its own draw."""
    out = dict(totals)
    for whole, parts in STATS_INCLUDES.get(key, ()):
        if whole not in out:
            continue
        need = sum(out.get(p, 0) for p in parts)
        if out[whole] < need:
            out[whole] += need
    return out

#: big_net's generated pcbs cycle through (protocol, TCP state, has a socket)
BULK_MIX = (("tcp", "ESTABLISHED", True), ("udp", None, True), ("tcp", "TIME_WAIT", False),
            ("tcp", "ESTABLISHED", True), ("udp", None, True))


def bulk_socket_count(n: int) -> int:
    per = sum(1 for x in BULK_MIX if x[2])
    full, rest = divmod(n, len(BULK_MIX))
    return full * per + sum(1 for x in BULK_MIX[:rest] if x[2])


def stack_counts(st: "NetStack") -> tuple[int, int]:
    """(vnet_ifcnt, vnet_sockcnt) the stack's objects imply."""
    socks = sum(1 for x in st.sockets if x.socket)
    if st.bulk:
        socks += bulk_socket_count(st.bulk["count"])
    return len(st.ifaces), socks


@dataclass
class AddrSpec:
    family: str                 # "inet" | "inet6"
    addr: str                   # without %zone
    prefixlen: int
    alias: bool = False         # configured with "alias" (no difference in the kernel)
    counters: tuple[int, int, int, int] = (0, 0, 0, 0)   # ipackets, opackets, ibytes, obytes
    flags6: int = 0             # ia6_flags (IN6_IFF_*)


@dataclass
class IfSpec:
    name: str
    dname: str
    dunit: int
    index12: int                # index inside its vnet (12/13: V_ifindex_table)
    index14: int                # global index (14: ifindex_table, if_idxgen)
    type: int
    flags: int
    mtu: int
    mac: str | None = None
    metric: int = 0
    addrs: list[AddrSpec] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)   # IFCOUNTER_* -> total
    get_counter: str = "if_get_counter_default"
    home: int | None = None     # owner JID of if_home_vnet when moved (vnet jail)
    baudrate: int = 0
    link_state: int = LINK_STATE_UP
    idxgen: int = 0
    description: str | None = None


@dataclass
class SockSpec:
    proto: str                  # tcp | udp | udplite | raw
    family: str                 # "4" | "6" | "46"
    laddr: str = "*"            # "*" = INADDR_ANY / in6addr_any; may carry %zone
    lport: int = 0
    faddr: str = "*"
    fport: int = 0
    state: str | None = None    # TCP state name (TCP_STATES, SYN_RECEIVED accepted)
    recvq: int = 0
    sendq: int = 0
    listen: tuple[int, int, int] | None = None  # sol_qlen, sol_incqlen, sol_qlimit
    socket: bool = True         # has a struct socket
    ip_p: int | None = None     # raw: inp_ip_p
    queued_on: int | None = None    # index (in the stack's list) of the listener
    queue: str | None = None        # "comp" | "incomp"
    v6only: bool = False
    cred_jid: int | None = None     # cr_prison of inp_cred (default: the stack's jail)
    note: str = ""


@dataclass
class NetStack:
    ifaces: list[IfSpec] = field(default_factory=list)
    sockets: list[SockSpec] = field(default_factory=list)
    stats_seed: int = 0
    freed_pcbs: int = 3          # pcbs allocated and freed before the dump (gencnt gaps)
    bulk: dict | None = None     # big_net: {"count": n, "first_port": p, ...}


def _c(seed: int, *, lo: bool = False, down: bool = False) -> dict[str, int]:
    """Plausible interface counters (deterministic)."""
    if down:
        return {n: 0 for n in IFCOUNTER_NAMES}
    ip = 10000 + seed * 7919 % 90000
    op = ip if lo else 8000 + seed * 104729 % 70000
    out = {
        "IFCOUNTER_IPACKETS": ip, "IFCOUNTER_IERRORS": 0 if lo else seed % 3,
        "IFCOUNTER_OPACKETS": op, "IFCOUNTER_OERRORS": 0,
        "IFCOUNTER_COLLISIONS": 0, "IFCOUNTER_IBYTES": ip * (180 if lo else 612),
        "IFCOUNTER_OBYTES": op * (180 if lo else 431), "IFCOUNTER_IMCASTS": 0 if lo else seed * 13 % 500,
        "IFCOUNTER_OMCASTS": 0 if lo else seed * 7 % 300, "IFCOUNTER_IQDROPS": 0 if lo else seed % 5,
        "IFCOUNTER_OQDROPS": 0, "IFCOUNTER_NOPROTO": 0 if lo else seed % 11,
    }
    return out


def default_network(dying_vnet_jail: bool = False) -> dict[int, NetStack]:
    """vnet0, the VNET jail 2 and (optionally) the dying VNET jail 6."""
    # index rule: 12/13 per vnet; 14 global in creation order:
    #   vtnet0 1, em0 2, lo0 3, (jail 2) lo0 4, epair0a 5, epair0b 6, (jail 6) lo0 7
    ifa = lambda *a, **k: AddrSpec(*a, **k)  # noqa: E731
    vnet0 = NetStack(stats_seed=1, freed_pcbs=37)
    vnet0.ifaces = [
        IfSpec("vtnet0", "vtnet", 0, 1, 1, IFT_ETHER,
               IFF_UP | IFF_BROADCAST | IFF_DRV_RUNNING | IFF_SIMPLEX | IFF_MULTICAST, 1500,
               mac="52:54:00:12:34:56", get_counter="vtnet_get_counter", baudrate=10_000_000_000,
               addrs=[ifa("inet", "192.0.2.1", 24, counters=(52311, 48822, 31890114, 20311877)),
                      ifa("inet6", "fe80::5054:ff:fe12:3456", 64, counters=(311, 290, 27110, 25003)),
                      ifa("inet6", "2001:db8::1", 64, counters=(8812, 9120, 4410233, 6021999)),
                      ifa("inet", "192.0.2.2", 32, alias=True, counters=(120, 97, 15022, 9811))],
               counters=_c(1)),
        IfSpec("em0", "em", 0, 2, 2, IFT_ETHER, IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST, 1500,
               mac="52:54:00:ab:cd:ef", link_state=LINK_STATE_DOWN, baudrate=1_000_000_000,
               counters=_c(2, down=True)),
        IfSpec("lo0", "lo", 0, 3, 3, IFT_LOOP, IFF_UP | IFF_LOOPBACK | IFF_DRV_RUNNING | IFF_MULTICAST,
               16384, link_state=LINK_STATE_UNKNOWN,
               addrs=[ifa("inet6", "::1", 128, counters=(1500, 1500, 120000, 120000)),
                      ifa("inet6", "fe80::1", 64, counters=(40, 40, 3200, 3200)),
                      ifa("inet", "127.0.0.1", 8, counters=(9100, 9100, 811000, 811000))],
               counters=_c(3, lo=True)),
        IfSpec("epair0a", "epair", 0, 4, 5, IFT_ETHER,
               IFF_UP | IFF_BROADCAST | IFF_DRV_RUNNING | IFF_SIMPLEX | IFF_MULTICAST, 1500,
               mac="02:00:00:00:00:0a", baudrate=10_000_000_000,
               addrs=[ifa("inet", "10.0.0.1", 24, counters=(2210, 2305, 301122, 290114))],
               counters=_c(4)),
    ]
    S = SockSpec
    vnet0.sockets = [
        S("tcp", "4", "*", 22, state="LISTEN", listen=(0, 0, 128), note="sshd"),
        S("tcp", "6", "*", 22, state="LISTEN", listen=(0, 0, 128), v6only=True, note="sshd"),
        S("udp", "4", "*", 123, note="ntpd"),
        S("udp", "6", "*", 123, v6only=True, note="ntpd"),
        S("udp", "6", "fe80::1%lo0", 123, note="ntpd, link-local with scope zone"),
        S("udp", "4", "127.0.0.1", 123, note="ntpd"),
        S("udp", "6", "::1", 123, note="ntpd"),
        S("udp", "4", "192.0.2.1", 53, note="named"),
        S("udp", "4", "127.0.0.1", 53, note="named"),
        S("udp", "6", "2001:db8::1", 53, note="named"),
        S("tcp", "4", "127.0.0.1", 25, state="LISTEN", listen=(0, 0, 10), note="sendmail"),
        S("tcp", "46", "*", 80, state="LISTEN", listen=(2, 1, 128),
          note="httpd, IPv6 socket on :: without V6ONLY"),
        S("tcp", "4", "192.0.2.1", 443, state="LISTEN", listen=(0, 0, 4096), note="httpd tls"),
        S("udp", "46", "*", 5353, note="v6 socket on :: without V6ONLY"),
        S("udplite", "4", "*", 5004, note="rtp"),
        S("udplite", "6", "2001:db8::1", 5005, note="rtp"),
        S("raw", "4", "*", 0, ip_p=IPPROTO_ICMP, note="raw ICMP socket"),
        S("tcp", "4", "192.0.2.1", 22, "198.51.100.20", 52341, state="ESTABLISHED",
          recvq=517, sendq=1448, note="ssh session"),
        S("tcp", "4", "192.0.2.1", 80, "203.0.113.9", 61000, state="ESTABLISHED"),
        S("tcp", "4", "192.0.2.1", 80, "203.0.113.10", 50001, state="ESTABLISHED", recvq=300,
          queued_on=11, queue="comp", note="accept queue of *:80"),
        S("tcp", "6", "2001:db8::1", 80, "2001:db8:1::99", 50002, state="ESTABLISHED", recvq=120,
          queued_on=11, queue="comp", note="accept queue of *:80"),
        S("tcp", "4", "192.0.2.1", 80, "203.0.113.11", 50003, state="SYN_RECEIVED",
          queued_on=11, queue="incomp", note="incomplete queue of *:80"),
        S("tcp", "4", "192.0.2.1", 40001, "198.51.100.53", 443, state="SYN_SENT"),
        S("tcp", "4", "192.0.2.1", 443, "203.0.113.20", 40100, state="FIN_WAIT_1", sendq=2896),
        S("tcp", "4", "192.0.2.1", 443, "203.0.113.21", 40101, state="FIN_WAIT_2"),
        S("tcp", "6", "2001:db8::1", 22, "2001:db8:1::5", 60022, state="CLOSE_WAIT", recvq=1),
        S("tcp", "4", "192.0.2.2", 80, "203.0.113.22", 40102, state="CLOSING"),
        S("tcp", "4", "127.0.0.1", 41000, "127.0.0.1", 25, state="ESTABLISHED", note="loopback pair"),
        S("tcp", "4", "127.0.0.1", 25, "127.0.0.1", 41000, state="LAST_ACK", note="loopback pair"),
        S("tcp", "4", "192.0.2.1", 45000, "198.51.100.80", 80, state="TIME_WAIT",
          note="TIME_WAIT, socket still open"),
        S("tcp", "4", "192.0.2.1", 443, "203.0.113.30", 40200, state="TIME_WAIT", socket=False),
        S("tcp", "6", "2001:db8::1", 443, "2001:db8:1::7", 40201, state="TIME_WAIT", socket=False),
        S("tcp", "4", "*", 0, state="CLOSED", note="socket(2) only"),
        S("udp", "4", "192.0.2.1", 51000, "198.51.100.53", 53, recvq=84, note="connected UDP"),
        S("tcp", "4", "10.0.0.1", 52000, "10.0.0.2", 80, state="ESTABLISHED", sendq=77,
          note="to jail 2 over epair0a"),
        S("tcp", "6", "2001:db8::1", 65000, "2001:db8:2::1", 25, state="ESTABLISHED",
          note="ephemeral"),
    ]
    jail2 = NetStack(stats_seed=2, freed_pcbs=5)
    jail2.ifaces = [
        IfSpec("lo0", "lo", 0, 1, 4, IFT_LOOP, IFF_UP | IFF_LOOPBACK | IFF_DRV_RUNNING | IFF_MULTICAST,
               16384, link_state=LINK_STATE_UNKNOWN,
               addrs=[ifa("inet", "127.0.0.1", 8, counters=(12, 12, 960, 960))],
               counters=_c(5, lo=True)),
        IfSpec("epair0b", "epair", 0, 2, 6, IFT_ETHER,
               IFF_UP | IFF_BROADCAST | IFF_DRV_RUNNING | IFF_SIMPLEX | IFF_MULTICAST, 1500,
               mac="02:00:00:00:00:0b", home=0, baudrate=10_000_000_000,
               addrs=[ifa("inet", "10.0.0.2", 24, counters=(2305, 2210, 290114, 301122))],
               counters=_c(6)),
    ]
    jail2.sockets = [
        S("tcp", "4", "10.0.0.2", 80, state="LISTEN", listen=(0, 0, 128), note="httpd in jail"),
        S("tcp", "4", "10.0.0.2", 80, "10.0.0.1", 52000, state="ESTABLISHED", recvq=77),
        S("udp", "4", "10.0.0.2", 53, note="resolver in jail"),
    ]
    jail6 = NetStack(stats_seed=6, freed_pcbs=9)
    jail6.ifaces = [
        IfSpec("lo0", "lo", 0, 1, 7, IFT_LOOP, IFF_UP | IFF_LOOPBACK | IFF_DRV_RUNNING | IFF_MULTICAST,
               16384, link_state=LINK_STATE_UNKNOWN,
               addrs=[ifa("inet", "127.0.0.1", 8, counters=(4, 4, 240, 240))],
               counters=_c(7, lo=True)),
    ]
    jail6.sockets = [
        S("tcp", "4", "127.0.0.1", 80, "127.0.0.1", 38000, state="TIME_WAIT", socket=False,
          note="keeps the dying jail's cred referenced"),
    ]
    out = {0: vnet0, 2: jail2}
    if dying_vnet_jail:
        out[6] = jail6
    return out


def big_network(owners: list[int], pcbs: int, biggest: int) -> dict[int, NetStack]:
    """Stacks for scenario.big_net: every stack gets lo0 + an epair B side and a
    small fixed set of sockets, plus a bulk of generated pcbs; ``biggest`` of
    them in the first jail's stack, the rest spread evenly."""
    out: dict[int, NetStack] = {}
    rest_owners = [o for o in owners if o != 0]
    fixed = 0
    for n, jid in enumerate(owners):
        st = NetStack(stats_seed=100 + jid, freed_pcbs=jid % 17)
        if jid == 0:
            st.ifaces = [
                IfSpec("vtnet0", "vtnet", 0, 1, 1, IFT_ETHER,
                       IFF_UP | IFF_BROADCAST | IFF_DRV_RUNNING | IFF_SIMPLEX | IFF_MULTICAST, 1500,
                       mac="52:54:00:12:34:56", get_counter="vtnet_get_counter",
                       addrs=[AddrSpec("inet", "192.0.2.1", 24, counters=(1, 2, 3, 4))],
                       counters=_c(1)),
                IfSpec("lo0", "lo", 0, 2, 2, IFT_LOOP,
                       IFF_UP | IFF_LOOPBACK | IFF_DRV_RUNNING | IFF_MULTICAST, 16384,
                       addrs=[AddrSpec("inet", "127.0.0.1", 8)], counters=_c(2, lo=True)),
            ]
            st.sockets = [SockSpec("tcp", "4", "*", 22, state="LISTEN", listen=(0, 0, 128))]
        else:
            k = n
            st.ifaces = [
                IfSpec("lo0", "lo", 0, 1, 2 + 2 * k, IFT_LOOP,
                       IFF_UP | IFF_LOOPBACK | IFF_DRV_RUNNING | IFF_MULTICAST, 16384,
                       addrs=[AddrSpec("inet", "127.0.0.1", 8)], counters=_c(jid, lo=True)),
                IfSpec(f"epair{k}b", "epair", k, 2, 3 + 2 * k, IFT_ETHER,
                       IFF_UP | IFF_BROADCAST | IFF_DRV_RUNNING | IFF_SIMPLEX | IFF_MULTICAST, 1500,
                       mac=f"02:{k >> 8 & 255:02x}:{k & 255:02x}:00:00:0b", home=0,
                       addrs=[AddrSpec("inet", f"10.{k >> 8 & 255}.{k & 255}.2", 24)],
                       counters=_c(jid)),
            ]
            st.sockets = [SockSpec("tcp", "4", "*", 80, state="LISTEN", listen=(0, 0, 128))]
        fixed += len(st.sockets)
        out[jid] = st
    bulk_total = pcbs - fixed
    if bulk_total < 0:
        raise ValueError("pcbs too small")
    big_owner = rest_owners[0] if rest_owners else 0
    big_n = min(biggest - 1, bulk_total)
    others = [o for o in owners if o != big_owner]
    remaining = bulk_total - big_n
    for i, jid in enumerate(others):
        share = remaining // len(others) + (1 if i < remaining % len(others) else 0)
        out[jid].bulk = {"count": share}
    out[big_owner].bulk = {"count": big_n}
    return out
