"""Kernel memory per idle TCP socket: slab growth over N idle loopback connection pairs
(each carried one small write), and the TCP buffer pages they still hold. Linux only."""
import socket, resource, time
resource.setrlimit(resource.RLIMIT_NOFILE,(20000,20000))
def slab():
    d={}
    for l in open('/proc/meminfo'):
        k,v=l.split(':'); d[k]=int(v.split()[0])
    return d['Slab']
def sockmem():
    for l in open('/proc/net/sockstat'):
        if l.startswith('TCP:'):
            p=l.split(); return int(p[p.index('mem')+1])
N=4000
srv=socket.socket(); srv.bind(('127.0.0.1',0)); srv.listen(4096)
a0,m0=slab(),sockmem()
cs=[];ss=[]
for i in range(N):
    c=socket.create_connection(srv.getsockname()); s,_=srv.accept(); cs.append(c); ss.append(s)
    s.send(b': hb\n\n'); c.recv(100)
time.sleep(1)
a1,m1=slab(),sockmem()
print("slab KiB per socket", (a1-a0)/(2*N), "tcp mem pages delta", m1-m0)
