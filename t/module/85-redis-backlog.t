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

# bodies of 200 messages of 4 KB: each FCALL carries about 1.7 MB (text
# and raw).  One body is built, the others are copies with other ids.
my $nmsg = 200;
my $base = messages_body(messages => [ map {
    text_message("wamid.BL\@.$_", ('b' x 40) . ('x' x 4056)) } 1 .. $nmsg ]);
sub body { (my $b = $base) =~ s/BL\@/BL$_[0]/g; return $b }
cmp_ok length $base, '>', 800_000, 'bodies of ' . length($base) . ' bytes';

# nginx connects and loads its function before Redis freezes
is $t->post(messages_body(messages => [ text_message('wamid.BL0', 'x') ]))
    ->{status}, 200, 'warm-up body: 200';

$t->freeze('redis');

# the bytes queued towards Redis (nginx's send queue and Redis's receive
# queue, from /proc/net/tcp), once they stop changing
sub queued_steady {
    my ($q, $steady) = (-1, 0);
    my $deadline = time + 60;
    while (time < $deadline && $steady < 5) {
        sleep 0.2;
        my $now = WaTest::tcp_queued($t->redis_port);
        $steady = $now == $q ? $steady + 1 : 0;
        $q = $now;
    }
    return $q;
}

# Bodies one after another, until two of them more than the sockets to
# Redis hold are in nginx: the sockets are then full (their queues stop
# at the kernel's limits, whatever this kernel's are), the rest waits in
# hiredis's buffer for a write event.
my ($nbodies, $queued, @kids) = (0, 0);
while ($nbodies < 64 && $nbodies * 1.7e6 < $queued + 2 * 1.7e6 + 1) {
    my $b = body(++$nbodies);
    my $pid = fork // die;
    if (!$pid) {
        exit($t->post($b)->{status} == 200 ? 0 : 1);
    }
    push @kids, $pid;
    $t->wait_for(sub { WaTest::received_all($t->port, $nbodies) }, 60)
        or BAIL_OUT("nginx did not read body $nbodies");
    $queued = queued_steady();
}
cmp_ok $queued, '>', 0, "the sockets to Redis are full ($queued bytes "
    . "queued, no more taken)";
cmp_ok $queued + 1.7e6, '<', 1.7e6 * $nbodies, "while nginx holds more: "
    . "$nbodies commands";

# were nginx blocked on its writes, the page would wait for Redis, which
# is thawed after it: the HTTP client's timeout, and a 599
my $t0 = time;
my $g = $t->get('/wa-status');
is $g->{status}, 200, 'nginx serves other requests meanwhile';
ok time - $t0 < 5, 'at once';

$t->thaw('redis');

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
