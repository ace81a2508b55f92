# whatsapp_partitions on one Redis: each event goes to its number's
# partition (its WABA's without a number), under the partition's hash tag;
# a body with events of two partitions is answered 200 only once both
# appended, and Meta's redelivery after a 503 appends nothing twice; the
# worker with --partitions applies every partition.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use WaBody qw(text_message);
use WaPartition qw(prefixes);

my $PARTS = 4;

my $t = WaTest->new;
$t->start_redis;
$t->start_nginx(location => "whatsapp_partitions $PARTS;");

my @prefix = map { "wa:{$_}" } qw(0.1 1.3 2.1 3.3);
is_deeply [ prefixes($PARTS) ], \@prefix,
          'the tags the module and docs/redis.md agree on';

# numbers of two different partitions
my ($a, $b) = ('106540352242922', undef);
for my $i (1 .. 50) {
    my $n = sprintf '1065403522%05d', $i;
    next if part_of($n) == part_of($a);
    $b = $n;
    last;
}

sub entry {
    my ($num, $id) = @_;
    return { id => "waba-$num", changes => [ { field => 'messages', value => {
        messaging_product => 'whatsapp',
        metadata => { display_phone_number => '15550001111',
                      phone_number_id => $num },
        contacts => [ { profile => { name => 'U' }, wa_id => '5511900000001' } ],
        messages => [ text_message($id, 'hi', from => '5511900000001') ],
    } } ] };
}

sub body {
    return WaTest::meta_json({ object => 'whatsapp_business_account',
                               entry => [ map { entry(@$_) } @_ ] });
}

is $t->post(body([ $a, 'wamid.p.1' ]))->{status}, 200, 'one number: 200';
my $pa = $prefix[ part_of($a) ];
my $pb = $prefix[ part_of($b) ];
is $t->xlen("$pa:messages"), 1, "its event is in its partition, $pa";
is $t->xlen('wa:messages'), 0, 'none in the single-instance stream';
ok $t->redis('EXISTS', "$pa:dedupe:message:wamid.p.1"),
   'its dedupe key beside it';

is $t->post(body([ $a, 'wamid.p.2' ], [ $b, 'wamid.p.3' ]))->{status}, 200,
   'two numbers of two partitions: 200';
is $t->xlen("$pa:messages"), 2, 'one event in the first partition';
is $t->xlen("$pb:messages"), 1, 'one in the second';

# the second partition's stream refused: the whole body is 503
$t->redis('SET', "$pb:messages", 'not a stream');
my $two = body([ $a, 'wamid.p.4' ], [ $b, 'wamid.p.5' ]);
my $r = $t->post($two);
is $r->{status}, 503, 'a partition failing makes the body 503';
ok $t->wait_log(qr/redis answered "WRONGTYPE/), 'and says why';
is $t->xlen("$pa:messages"), 3, 'the other partition appended its part';

# Meta resends: the part appended is a duplicate, the other is appended
$t->redis('DEL', "$pb:messages");
is $t->post($two)->{status}, 200, 'the redelivery: 200';
is $t->xlen("$pa:messages"), 3, 'nothing appended twice';
is $t->xlen("$pb:messages"), 1, 'the refused part appended';

# an account event has no number: its WABA's partition
my $acct = WaTest::meta_json({ object => 'whatsapp_business_account',
    entry => [ { id => '102290129340398', time => 1780000000, changes => [
        { field => 'account_update',
          value => { event => 'ACCOUNT_RESTRICTION' } } ] } ] });
is $t->post($acct)->{status}, 200, 'an account event: 200';
is $t->xlen($prefix[ part_of('102290129340398') ] . ':account'), 1,
   'in its WABA\'s partition';

ok !$t->redis('EXISTS', map { "$_:migrating" } @prefix),
   'the key each call names is never written';

# the worker reads every partition
$t->start_worker(partitions => $PARTS);
ok $t->wait_for(sub { !grep { !$t->drained($_) } @prefix }, 20),
   'the worker applied every partition' or diag $t->worker_log;
ok $t->hash("$pb:contact:$b:5511900000001")->{messages_in},
   'state in the partition of the number';
is $t->hash('wa:partitions')->{count}, $PARTS, 'wa:partitions lists them';
is $t->hash('wa:partitions')->{2}, $prefix[2], 'with their prefix';

done_testing;

sub part_of { WaPartition::part_of($_[0], $PARTS) }
