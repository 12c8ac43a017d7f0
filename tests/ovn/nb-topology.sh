#!/usr/bin/env bash
# Builds a representative OVN Northbound topology with ovn-nbctl against $DB (default options,
# so leader-only as shipped). Used to compare Halyard with the real ovsdb-server: run it against
# both and compare `ovn-nbctl show` and the table dumps.
set -euo pipefail
nb() { ovn-nbctl --db="$DB" --timeout=30 "$@"; }
nb init
# Two tenant switches with ports, a router joining them, and an external network.
nb ls-add sw0 -- ls-add sw1 -- ls-add public
for i in 1 2 3; do
  nb lsp-add sw0 sw0-p$i -- lsp-set-addresses sw0-p$i "50:54:00:00:00:0$i 10.0.0.1$i"
  nb lsp-set-port-security sw0-p$i "50:54:00:00:00:0$i 10.0.0.1$i"
done
for i in 1 2; do
  nb lsp-add sw1 sw1-p$i -- lsp-set-addresses sw1-p$i "50:54:00:00:01:0$i 10.0.1.1$i" "dynamic"
done
nb lr-add lr0
nb lrp-add lr0 lr0-sw0 00:00:00:00:ff:01 10.0.0.1/24
nb lrp-add lr0 lr0-sw1 00:00:00:00:ff:02 10.0.1.1/24
nb lrp-add lr0 lr0-public 00:00:20:20:12:13 172.16.0.1/24
nb lsp-add sw0 sw0-lr0 -- lsp-set-type sw0-lr0 router -- lsp-set-addresses sw0-lr0 router \
   -- lsp-set-options sw0-lr0 router-port=lr0-sw0
nb lsp-add sw1 sw1-lr0 -- lsp-set-type sw1-lr0 router -- lsp-set-addresses sw1-lr0 router \
   -- lsp-set-options sw1-lr0 router-port=lr0-sw1
nb lsp-add public public-lr0 -- lsp-set-type public-lr0 router -- lsp-set-addresses public-lr0 router \
   -- lsp-set-options public-lr0 router-port=lr0-public
nb lsp-add public ln-public -- lsp-set-type ln-public localnet -- lsp-set-addresses ln-public unknown \
   -- lsp-set-options ln-public network_name=physnet1
nb lrp-set-gateway-chassis lr0-public chassis-1 20
nb lr-route-add lr0 0.0.0.0/0 172.16.0.254
nb lr-route-add lr0 192.168.100.0/24 10.0.1.100
# NAT: SNAT for both tenant subnets, one floating IP.
nb lr-nat-add lr0 snat 172.16.0.1 10.0.0.0/24
nb lr-nat-add lr0 snat 172.16.0.1 10.0.1.0/24
nb lr-nat-add lr0 dnat_and_snat 172.16.0.110 10.0.0.11 sw0-p1 30:54:00:00:00:03
# Address sets, port groups and ACLs.
nb create Address_Set name=as_web addresses='"10.0.0.11","10.0.0.12"'
nb pg-add pg_web sw0-p1 sw0-p2
nb pg-add pg_db sw1-p1
nb acl-add pg_web to-lport 1002 'outport == @pg_web && ip4 && tcp.dst == 80' allow-related
nb acl-add pg_web to-lport 1001 'outport == @pg_web && ip4' drop
nb acl-add sw1 from-lport 1000 'ip4.src == $as_web' allow
nb --type=port-group acl-add pg_db to-lport 1003 'outport == @pg_db && tcp.dst == 5432' allow-related
# Load balancers on the router and a switch.
nb lb-add lb_web 172.16.0.200:80 10.0.0.11:8080,10.0.0.12:8080 tcp
nb lb-add lb_dns 10.0.0.250:53 10.0.1.11:53,10.0.1.12:53 udp
nb lr-lb-add lr0 lb_web
nb ls-lb-add sw0 lb_dns
# DHCP options for sw0 and their use on its ports.
opts=$(nb create DHCP_Options cidr=10.0.0.0/24 \
  options='"lease_time"="3600" "router"="10.0.0.1" "server_id"="10.0.0.1" "server_mac"="c0:ff:ee:00:00:01"')
for i in 1 2 3; do nb lsp-set-dhcpv4-options sw0-p$i "$opts"; done
# Changes after creation: a deleted port, a renamed external id, a disabled port.
nb lsp-del sw0-p3
nb set Logical_Switch sw1 external_ids:owner=tenant-b other_config:mcast_snoop=true
nb lsp-set-enabled sw1-p2 disabled
nb lsp-set-type sw1-p2 "" -- lsp-set-options sw1-p2 requested-chassis=chassis-2
