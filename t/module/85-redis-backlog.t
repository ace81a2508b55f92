# Commands bigger than the socket to Redis can hold: while Redis is frozen
# nginx's writes stop short, it waits for the socket to drain (and keeps
# serving), and once Redis wakes every command arrives whole, in order
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx(redis_timeout => '20s');

# 12 bodies of 200 messages of 4 KB: each FCALL carries about 1.7 MB
# (text and raw), 20 MB in all, more than loopback's socket buffers
# (tcp_wmem and tcp_rmem allow at most 4 MB and 6 MB)
my $nbodies = 12;
my $nmsg = 200;
my @bodies = map {
    my $b = $_;
    messages_body(messages => [ map {
        text_message("wamid.BL$b.$_", ('b' x 40) . ('x' x 4056))
    } 1 .. $nmsg ])
} 1 .. $nbodies;
cmp_ok length $bodies[0], '>', 800_000, 'bodies of ' . length($bodies[0])
    . ' bytes';

# nginx connects and loads its function before Redis freezes
is $t->post(messages_body(messages => [ text_message('wamid.BL0', 'x') ]))
    ->{status}, 200, 'warm-up body: 200';

kill 'STOP', $t->{pids}{redis};

my @kids;
for my $i (0 .. $#bodies) {
    my $pid = fork // die;
    if (!$pid) {
        exit($t->post($bodies[$i])->{status} == 200 ? 0 : 1);
    }
    push @kids, $pid;
}

# the bytes queued towards Redis (nginx's send queue and Redis's receive
# queue, from /proc/net/tcp) stop growing at the sockets' limits: the rest
# waits in hiredis's buffer for a write event
sub queued {
    my $port = sprintf '%04X', $t->redis_port;
    my $sum = 0;
    open my $fh, '<', '/proc/net/tcp' or return 0;
    while (<$fh>) {
        my ($local, $remote, $queues) = (split ' ')[1, 2, 4];
        next unless defined $queues && $queues =~ /^([0-9A-F]+):([0-9A-F]+)$/;
        my ($tx, $rx) = (hex $1, hex $2);
        $sum += $tx if $remote =~ /:$port$/;
        $sum += $rx if $local =~ /:$port$/;
    }
    return $sum;
}

my ($queued, $steady) = (0, 0);
my $deadline = time + 10;
while (time < $deadline && $steady < 5) {
    sleep 0.2;
    my $q = queued();
    $steady = ($q > 0 && $q == $queued) ? $steady + 1 : 0;
    $queued = $q;
}
cmp_ok $queued, '>', 1_000_000, "the sockets to Redis are full "
    . "($queued bytes queued)";
cmp_ok $queued, '<', 1.7e6 * $nbodies, 'and hold less than the '
    . 'commands sent';

my $t0 = time;
my $g = $t->get('/wa-status');
is $g->{status}, 200, 'nginx serves other requests meanwhile';
ok time - $t0 < 1, 'at once';

kill 'CONT', $t->{pids}{redis};

my $bad = 0;
for (@kids) { waitpid $_, 0; $bad++ if $? }
is $bad, 0, "all $nbodies bodies answered 200 once Redis woke";
is $t->xlen('wa:messages'), 1 + $nbodies * $nmsg,
    'every message is in the stream';

# each event whole: the last of every body carries its 4 KB text
my @ev = $t->stream_events('wa:messages');
my $whole = grep { ($_->{text} // '') =~ /^b{40}x{4056}$/ } @ev;
is $whole, $nbodies * $nmsg, 'every text arrived whole';

unlike $t->error_log, qr/\[(alert|crit|emerg)\]/, 'no alert in the log';

done_testing;
