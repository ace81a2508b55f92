# Meta's 130429 (a number over its throughput) holds the number for every
# wa-relayd that sends for it, not only the one that got the error: the
# hold is kept in Redis with the number's pace (wa_hold_1), and the
# governor makes every sender wait it out.  Two workers with tokens of
# their own, so that each request says which worker sent it.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use Time::HiRes qw(time sleep);
use FakeGraph;
use WaTest;

my $t = WaTest->new;
$t->start_redis;
my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
my $PN = '106540352242922';
my $HOLD = 1500;               # --retry-base-ms: the first retry's wait

for my $w (qw(w1 w2)) {
    $t->write_file("token-$w", "EAAtoken-$w\n", 0600);
    $t->start_worker(consumer => $w, 'token-file' => $t->dir . "/token-$w",
                     'graph-url' => $graph, rate => 1000,
                     'pair-interval-ms' => 0, 'max-inflight' => 2,
                     'retry-base-ms' => $HOLD, 'claim-idle-ms' => 60000);
}
ok $t->wait_for(sub { $t->group('wa:outbox', 'wa-relayd')->{name}
                     && !grep { $t->worker_log($_) !~ /sender: on/ } qw(w1 w2)
                }, 10), 'both workers send';

sub template {
    { type => 'template', template => { name => 'hold',
                                        language => { code => 'en_US' } } }
}

# the number's first request is answered 130429
$g->rules([ { to => '5511000007000', code => 130429, times => 1 } ]);
my $first = $t->outbox(phone_number_id => $PN, to => '5511000007000',
                       message => template());
ok $t->wait_for(sub { ($t->redis('PTTL', "wa:pace:$PN") // 0) > 1000 }, 10),
   'the 130429 held the number in Redis' or diag $t->worker_log('w1');
my $held_at = time;
my $pttl = $t->redis('PTTL', "wa:pace:$PN");
# the key lives a second past the hold (wa_hold_1)
my $until = $held_at + ($pttl - 1000) / 1000;
cmp_ok $until - $held_at, '>', 0.5, sprintf 'held for %.2f s more',
    $until - $held_at;

my @ids = $t->outbox_batch(map { [ phone_number_id => $PN,
                                   to => sprintf('55110000071%02d', $_),
                                   message => template() ] } 1 .. 20);
ok $t->wait_for(sub {
        my %sent = map { $_->{outbox_id} => 1 }
                   $t->stream_events('wa:sent');
        !grep { !$sent{$_} } @ids, $first }, 30),
   'every entry sent once the hold ended'
    or diag $t->worker_log('w1'), $t->worker_log('w2');

my @after = grep { ($_->{json}{to} // '') =~ /^55110000071/ } $g->requests;
is scalar @after, 20, '20 requests for the entries added during the hold';
my ($early) = sort { $a <=> $b } map { $_->{t} } @after;
# the pace's tolerance (5 ms at this rate) and the clocks' read: 50 ms
cmp_ok $early, '>=', $until - 0.05,
    sprintf 'none before the hold ended (the first %.3f s after it)',
    $early - $until;
my %by = map { $_->{auth} => 1 } @after;
is scalar(keys %by), 2, 'both workers sent some: the one that got the '
    . '130429 and the one that did not' or diag explain \%by;

done_testing;
