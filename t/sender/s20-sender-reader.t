# The sender reads the outbox through the same stream reader as the
# consumer: an outbox entry delivered more than --max-deliveries times (a
# sender that keeps dying on it) goes to wa:dead instead of being tried
# forever, and the sender keeps counters of its own, not the consumer's.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use FakeGraph;
use WaTest;

my $t = WaTest->new;
$t->start_redis;
my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
$t->write_file('token', "EAAtoken-secret\n", 0600);

my $PN = '106540352242922';

# a poison entry: taken 10 times by a consumer that died each time
$t->redis('XGROUP', 'CREATE', 'wa:outbox', 'wa-relayd', '0', 'MKSTREAM');
my $poison = $t->outbox(phone_number_id => $PN, to => '5511000000009',
                        message => { type => 'text', text => { body => 'x' } });
$t->redis('XREADGROUP', 'GROUP', 'wa-relayd', 'ghost', 'COUNT', '1',
          'STREAMS', 'wa:outbox', '>');
$t->redis('XCLAIM', 'wa:outbox', 'wa-relayd', 'ghost', '0', $poison,
          'RETRYCOUNT', '10');

$t->start_worker('token-file' => $t->dir . '/token', 'graph-url' => $graph,
                 'claim-idle-ms' => 200, 'max-deliveries' => 3);

my $dead = $t->wait_for(sub {
    (grep { ($_->{id} // '') eq $poison } $t->stream_events('wa:dead'))[0] });
ok $dead, 'the poison entry is in wa:dead';
is $dead->{stream}, 'wa:outbox', 'from the outbox';
like $dead->{reason}, qr/delivered too many times/, 'with the reason';
cmp_ok $dead->{deliveries}, '>', 3, 'and how often it was delivered';
is $dead->{to}, '5511000000009', 'its fields kept';

my $pending = $t->redis('XPENDING', 'wa:outbox', 'wa-relayd');
is $pending->[0], 0, 'nothing pending in the outbox group';
is scalar($g->requests), 0, 'nothing sent to the Graph API';
like $t->worker_log, qr/sender: entry \Q$poison\E of wa:outbox delivered \d+ times, moved to wa:dead/,
    'the log says so';

# the sender's own counters: in wa:sender:<consumer>, not in the consumer's
my $c = $t->wait_for(sub {
    my $h = $t->hash('wa:sender:w1');
    ($h->{dead} // 0) >= 1 ? $h : undef });
ok $c, 'wa:sender:w1 holds the sender\'s counters';
is $c->{dead}, 1, 'one dead';
is $c->{reclaimed}, 1, 'one reclaimed';
is $c->{sent}, 0, 'none sent';
is $t->hash('wa:worker:w1')->{applied} // 0, 0,
    'the consumer counts no sends as applied';

done_testing;
