package WaPartition;

# The partitions of the key layout as src/core/wa_partition.c has them,
# written again here from docs/redis.md so that the tests check the C
# against the documented rules: the partition of an id, the tag of a
# partition.

use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw(part_of prefixes);

# FNV-1a (32 bits) of the id's bytes, modulo n
sub part_of {
    my ($id, $n) = @_;
    my $h = 2166136261;
    for my $ch (unpack 'C*', $id) {
        $h = (($h ^ $ch) * 16777619) % 4294967296;
    }
    return $h % $n;
}

# CRC16 (XMODEM), as Redis Cluster hashes a key
sub crc16 {
    my $crc = 0;
    for my $ch (unpack 'C*', $_[0]) {
        $crc ^= $ch << 8;
        for (1 .. 8) {
            $crc = $crc & 0x8000 ? (($crc << 1) ^ 0x1021) & 0xffff
                                 : ($crc << 1) & 0xffff;
        }
    }
    return $crc;
}

# every partition's prefix: "wa:{p.k}", k the first whose slot falls in
# the partition's share of the 16384 slots
sub prefixes {
    my ($n, $prefix) = @_;
    my @out;
    for my $p (0 .. $n - 1) {
        my ($lo, $hi) = (int($p * 16384 / $n), int(($p + 1) * 16384 / $n));
        for (my $k = 0; ; $k++) {
            my $s = crc16("$p.$k") % 16384;
            if ($s >= $lo && $s < $hi) {
                push @out, ($prefix // 'wa') . ":{$p.$k}";
                last;
            }
        }
    }
    return @out;
}

1;
