"""
Any TCP or UDP program over the mesh: a SOCKS5 proxy, TCP and UDP port forwards (unix sockets
too), and PROXY v2 headers that tell a local service which node is calling. Config keys
C{socks}, C{local_tcp}, C{remote_tcp}, C{local_udp}, C{remote_udp}; see the README section
"Forwards and the SOCKS proxy". The specs are parsed by L{axl.forward.spec}; the node wires the
forwards with L{axl.forward.service.build_forwards}.
"""
