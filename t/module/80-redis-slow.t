# Redis that does not answer: 503 after whatsapp_redis_timeout, the
# connection is dropped and made again, Meta's retry lands exactly once
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(sleep time);
use WaTest;
use WaBody qw(text_message messages_body);

my $t = WaTest->new;
my $redis = $t->start_redis;
$t->start_nginx(redis_timeout => '1s');

my $body = messages_body(messages => [ text_message('wamid.SLOW', 'x') ]);

$t->freeze('redis');
my $t0 = time;
my $r = $t->post($body);
my $took = time - $t0;
is $r->{status}, 503, 'Redis frozen: 503';
is $r->{headers}{'retry-after'}, '5', 'with Retry-After';
# not before the timeout; the ceiling only catches a hang
ok $took >= 0.9 && $took < 10, sprintf 'after the 1s timeout (%.2fs)', $took;
ok $t->wait_log(qr/whatsapp webhook: .*(timed out|timeout)/i),
    'the log names the timeout';

# nginx kept serving other requests while it waited
my $g = $t->get('/wa-status');
is $g->{status}, 200, 'event loop not blocked';

$t->thaw('redis');

# Redis may still run the timed-out append when it wakes: the retry is
# then a duplicate, and either way the event is there once
my $deadline = time + 30;
while (time < $deadline) {
    $r = $t->post($body);
    last if $r->{status} == 200;
    sleep 0.1;
}
is $r->{status}, 200, 'after Redis wakes: 200';
is $t->xlen('wa:messages'), 1, 'the event exactly once';

my $c = $t->status_counters;
cmp_ok $c->{redis_timeouts}, '>=', 1, 'timeout counted';

# several requests in flight when Redis freezes: all 503, none hangs
$t->freeze('redis');
my @kids;
for my $i (1 .. 5) {
    my $pid = fork // die;
    if (!$pid) {
        my $b = messages_body(messages => [ text_message("wamid.F$i", 'x') ]);
        exit($t->post($b)->{status} == 503 ? 0 : 1);
    }
    push @kids, $pid;
}
my $bad = 0;
for (@kids) { waitpid $_, 0; $bad++ if $? }
is $bad, 0, 'five concurrent requests: all 503';
$t->thaw('redis');

done_testing;
