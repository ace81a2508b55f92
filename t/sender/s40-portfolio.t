# Meta's messaging limit as it applies since 2025-10-07: one limit per
# business portfolio, shared by its numbers, a user reached from two of
# them counted once.  Through nginx (the limits come as Meta's webhooks),
# the worker's sender and the fake Graph API: two numbers of one WABA at
# TIER_250 send 150 users each; two portfolios keep their own limits;
# --portfolio joins two WABAs; a raised limit releases what waited; and
# --messaging-limit number keeps each number's own.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use FakeGraph;
use WaTest;
use WaBody qw(status_item change_body envelope);

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx;
my $g = FakeGraph->new(dir => $t->dir);
my $graph = $g->start;
$t->write_file('token', "EAAtoken-secret\n", 0600);
my @sender = ('token-file' => $t->dir . '/token', 'graph-url' => $graph,
              rate => 1000, 'pair-interval-ms' => 0, 'max-inflight' => 64,
              'tier-recheck-ms' => 1000);

# wa-relayd refuses a declaration it cannot read, repeated flags each read
my $bin = $ENV{WA_WORKER} || 'build/wa-relayd';
my $err = `$bin --portfolio P1=1,2 --portfolio bad 2>&1`;
is $? >> 8, 2, 'a bad --portfolio: exit 2';
like $err, qr/--portfolio: "bad" is not ID=WABA/, '... naming it';
$err = `$bin --messaging-limit tier 2>&1`;
like $err, qr/--messaging-limit: "tier" is neither portfolio nor number/,
    'a bad --messaging-limit: named';

$t->start_worker(@sender, portfolio => 'P9=3003,3004');

# business numbers, each made known by a status of its WABA's webhook
my %num;
my $n = 0;
sub number {
    my ($name, $waba) = @_;
    my ($pn, $display) = ('10' . (1000 + ++$n) x 2, '1555000' . (1000 + $n));
    $num{$name} = { pn => $pn, display => $display, waba => $waba };
    is $t->post(WaTest::meta_json(envelope('messages', {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => $display,
                      phone_number_id => $pn },
        statuses => [ status_item("wamid.$name", 'sent', ts => time) ] },
        waba => $waba)))->{status}, 200, "number $name, WABA $waba";
}
number('A', '3001');
number('B', '3001');
number('C', '3002');
number('D', '3002');
number('E', '3003');
number('F', '3004');

sub quality {
    my ($name, $limit) = @_;
    is $t->post(change_body('phone_number_quality_update', {
        display_phone_number => $num{$name}{display}, event => 'ONBOARDING',
        current_limit => $limit }, time, waba => $num{$name}{waba}))
        ->{status}, 200, "number $name: $limit";
}
sub capability {
    my ($waba, $limit) = @_;
    is $t->post(change_body('business_capability_update', {
        max_daily_conversations_per_business => $limit }, time,
        waba => $waba))->{status}, 200, "WABA $waba: $limit a day";
}
quality('A', 'TIER_250');
quality('C', 'TIER_250');
capability('3003', 3);
ok $t->wait_for(sub { $t->drained }), 'the limits applied';

sub template {
    my ($name, $user) = @_;
    return [ phone_number_id => $num{$name}{pn}, to => $user,
             message => { type => 'template', template => {
                 name => 'offer', language => { code => 'en_US' } } } ];
}

# what became of outbox entries: sent (once each), or deferred, and why
sub sent_ids {
    my %c;
    $c{ $_->{outbox_id} // '' }++ for $t->stream_events('wa:sent');
    return \%c;
}
sub deferred {
    my %d = map { $_ => 1 } @{ $t->redis('ZRANGE', 'wa:deferred', 0, -1) };
    return \%d;
}
sub settle {
    my (@ids) = @_;
    my ($s, $d);
    $t->wait_for(sub {
        ($s, $d) = (sent_ids(), deferred());
        @ids == grep { $s->{$_} || $d->{$_} } @ids;
    });
    return (scalar(grep { $s->{$_} } @ids), scalar(grep { $d->{$_} } @ids),
            scalar(grep { ($s->{$_} // 0) > 1 } @ids));
}
sub reason {
    my $e = $t->redis('HGET', 'wa:deferred:entries', $_[0]) // '';
    return $e =~ /"_reason":"(\w+)"/ ? $1 : $e;
}
sub reached { $t->redis('ZCARD', "wa:preach:$_[0]") }

# --- a user reached from two numbers of one portfolio is one user ---------
my @x = $t->outbox_batch(template('C', '5521000000001'));
is_deeply [ (settle(@x))[0] ], [1], 'a template from number C: sent';
push @x, $t->outbox_batch(template('D', '5521000000001'));
is_deeply [ settle(@x) ], [2, 0, 0], '... to the same user from D: sent';
is reached('3002'), 1, 'one user reached in the portfolio, not two';

# --- two numbers of one WABA at TIER_250, 150 users each ------------------
my @a = $t->outbox_batch(map { template('A', sprintf '5511%07d', $_) }
                         1 .. 150);
push @a, $t->outbox_batch(map { template('B', sprintf '5512%07d', $_) }
                          1 .. 150);
my ($sent, $waiting, $twice) = settle(@a);
is $sent, 250, "300 users from two numbers of a TIER_250 WABA: 250 sent";
is $waiting, 50, '50 deferred';
is $twice, 0, 'none sent twice';
is scalar(grep { reason($_) eq 'tier_limit' } grep { deferred()->{$_} } @a),
    50, '... each for tier_limit';
is reached('3001'), 250, '250 users reached in the portfolio';
my %users;
$users{ $_->{json}{to} }++ for grep { ($_->{path} // '') =~ /\Q$num{A}{pn}\E|\Q$num{B}{pn}\E/ } $g->requests;
is scalar(keys %users), 250, 'the Graph API saw 250 users';
is scalar(grep { $_ > 1 } values %users), 0, '... each once';
my $p = $t->hash('wa:portfolio:3001');
is "$p->{limit_users} $p->{limit_tier} $p->{reached}", '250 TIER_250 250',
    'the portfolio: its limit, tier and users reached';
is_deeply [ sort @{ $t->redis('SMEMBERS', 'wa:portfolio:3001:numbers') } ],
    [ sort $num{A}{pn}, $num{B}{pn} ], '... and its numbers';
my @alerts = grep { ($_->{subject} // '') eq 'portfolio 3001' }
             $t->stream_events('wa:alerts');
ok((grep { $_->{severity} eq 'warning' && $_->{message} =~ /80%/ } @alerts),
   'an alert at 80%');
ok((grep { $_->{severity} eq 'critical' && $_->{message} =~ /reached/ }
    @alerts), 'an alert at 100%');

# --- portfolios keep their own limits ---------------------------------------
push @x, $t->outbox_batch(template('C', '5521000000002'));
is((settle(@x))[0], 3, 'the other portfolio still sends');
my @full = $t->outbox_batch(template('A', '5513000000001'));
is_deeply [ settle(@full) ], [0, 1, 0], 'the full one defers a new user';
push @a, @full;

# --- --portfolio: two WABAs, one limit ----------------------------------------
my @j = $t->outbox_batch(template('E', '5531000000001'),
                         template('E', '5531000000002'),
                         template('F', '5531000000003'),
                         template('F', '5531000000004'));
is_deeply [ settle(@j) ], [3, 1, 0],
    'WABAs 3003 and 3004 joined (--portfolio P9=3003,3004): 3 of 4 sent, '
    . "3003's limit";
is reached('P9'), 3, 'reached counted in the portfolio P9';
is $t->hash('wa:portfolio:P9')->{wabas}, '3003,3004',
    'the declaration kept in Redis';

# --- a raised limit releases what waited --------------------------------------
capability('3001', 'TIER_2K');
ok $t->wait_for(sub { (settle(@a))[0] == 301 }),
    'business_capability_update to TIER_2K: the 51 deferred are sent';
is((settle(@a))[2], 0, '... none twice');
is reached('3001'), 301, '301 users reached';

# --- --messaging-limit number: each number its own ---------------------------
$t->stop('worker-w1');
$t->start_worker(@sender, consumer => 'w2', 'messaging-limit' => 'number');
number('G', '3005');
number('H', '3005');
quality('G', 'TIER_50');
quality('H', 'TIER_50');
ok $t->wait_for(sub { $t->drained }), 'the limits applied';
my @k = $t->outbox_batch(map { template('G', sprintf '5541%07d', $_) }
                         1 .. 60);
push @k, $t->outbox_batch(map { template('H', sprintf '5542%07d', $_) }
                          1 .. 60);
is_deeply [ settle(@k) ], [100, 20, 0],
    '--messaging-limit number: two TIER_50 numbers of one WABA send 50 each';

# --- Redis lost its functions (FUNCTION FLUSH, a restart without them) ----
$t->stop('worker-w2');
$t->start_worker(@sender, consumer => 'w3');
ok $t->wait_for(sub { $t->worker_log('w3') =~ /sender: sent/ }),
    'a worker in portfolio mode again, its sender up';
$t->redis('FUNCTION', 'FLUSH');
push @x, $t->outbox_batch(template('C', '5521000000003'));
is((settle(@x))[0], 4, 'the functions gone: loaded again, the template sent');
is reached('3002'), 3, '... and its user counted';
unlike $t->worker_log('w3'), qr/wa_reach_1|link.*lost/i,
    '... by the reservation itself, the link kept';

done_testing;
