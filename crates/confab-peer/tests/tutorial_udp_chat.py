# The UDP chat script of the tutorial (seed 002, "chat_linux.py"), corrected so that a
# test can run it: addresses come from argv instead of input(), pyfiglet and the
# os.system colour calls are gone, and it prints the port it bound (port 0 picks a free
# one) so the test knows where it listens. The chat logic is the tutorial's: a send
# thread and a receive thread, recvfrom(1024), and "quit", "exit" or "bye bye" meaning
# that a friend goes offline.
#
# Usage: python3 -u tutorial_udp_chat.py MY_IP MY_PORT FRIEND_IP FRIEND_PORT

import os
import socket as soc
import sys
import threading as thread

your_ip, your_port = sys.argv[1], int(sys.argv[2])
frd_ip, frd_port = sys.argv[3], int(sys.argv[4])

skt2 = soc.socket(soc.AF_INET, soc.SOCK_DGRAM)
skt2.bind((your_ip, your_port))
print("BOUND", skt2.getsockname()[1], flush=True)


def recieve_msg():
    while True:
        msgRcv = skt2.recvfrom(1024)
        if msgRcv[0].decode() == "quit" or msgRcv[0].decode() == "bye bye" or msgRcv[0].decode() == "exit":
            print("NOW YOUR FRIEND GOES OFFLINE.....", flush=True)
            os._exit(1)
        print("\n\t\t\t YOUR FRIEND'S MSG --->" + msgRcv[0].decode(), flush=True)


def send_msg():
    while True:
        data = input().encode()
        msgSent = skt2.sendto(data, (frd_ip, frd_port))
        if data.decode() == "quit" or data.decode() == "bye bye" or data.decode() == "exit":
            os._exit(1)


t3 = thread.Thread(target=send_msg)
t4 = thread.Thread(target=recieve_msg)
t3.start()
t4.start()
